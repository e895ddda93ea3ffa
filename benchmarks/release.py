"""What a release publishes (``make release``): the command line of
:mod:`benchmarks.tools.release`, whose docstring says what it does.

    python benchmarks/release.py [--out dist]      # dist/SlicerHRINet and dist/assets
    python benchmarks/release.py --catalog         # rewrite Resources/weights/catalog.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from benchmarks.tools.release import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
