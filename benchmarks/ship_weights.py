"""Copy trained weights into Resources/weights with their evaluation in the sidecar: the command
line of :mod:`benchmarks.tools.ship_weights`, whose docstring says what it does.

    python benchmarks/ship_weights.py --default runs/default \
        --variants runs/ae runs/acai ... --metrics out/evaluate/metrics.csv
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from benchmarks.tools.ship_weights import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
