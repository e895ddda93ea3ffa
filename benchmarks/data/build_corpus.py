"""Build the corpus of ``corpus.toml`` (beside this script): the command line of
:mod:`benchmarks.tools.corpus`, whose docstring says what it does.

    python benchmarks/data/build_corpus.py --out ../corpus [--sources DIR] [--shared DIR]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from benchmarks.tools.corpus import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
