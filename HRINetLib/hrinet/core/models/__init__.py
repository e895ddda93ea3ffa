"""The models as files, without torch: :mod:`~hrinet.core.models.shipped` (where shipped and
downloaded weights are found, and what each measured), :mod:`~hrinet.core.models.catalog` (the
catalog of every model, its checks, and the rule that turns a name into a model) and
:mod:`~hrinet.core.models.downloads` (fetching one on request, verified)."""
