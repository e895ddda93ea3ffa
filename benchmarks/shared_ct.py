"""Where the benchmarks find the real CT volumes: ``../shared/data/ct`` beside the checkout
(never in it; see its README for provenance and the split), or ``$HRINET_SHARED_CT`` when set
(as the tests and ``continue_default.sh`` read it)."""

import os
from pathlib import Path

SHARED_CT = Path(os.environ.get("HRINET_SHARED_CT")
                 or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct")
