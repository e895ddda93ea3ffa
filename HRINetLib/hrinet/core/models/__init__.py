"""The models as files, without torch: :mod:`~hrinet.core.models.shipped` (where shipped and
downloaded weights are found, and what each measured) and :mod:`~hrinet.core.models.catalog`
(the catalog of every model, its checks, and verified downloads on request)."""
