"""Release, weights shipping and corpus tooling: importable (``benchmarks.tools.release``,
``benchmarks.tools.ship_weights``, ``benchmarks.tools.corpus``) and run through the entry scripts
``benchmarks/release.py``, ``benchmarks/ship_weights.py`` and ``benchmarks/data/build_corpus.py``."""
