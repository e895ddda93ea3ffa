"""Where the benchmarks find the real CT volumes: ``../shared/data/ct`` beside the checkout
(never in it; see its README for provenance and the split)."""

from pathlib import Path

SHARED_CT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
