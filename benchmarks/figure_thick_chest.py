"""The 8 mm chest as a user gets it: a coronal view of each method's isotropic volume, no truth.

    python benchmarks/figure_thick_chest.py [VOLUME] [--out FILE] [--methods linear,flow,hrinet]

A real 8 mm chest CT (default ``chest-lungdx-8mm.nrrd`` of ../shared/data/ct) has no thin truth
to score against; what a reader sees is the coronal reformat, where a synthesised slice that is
smoother than the acquired ones, or a streak, shows. Each method fills the gaps to the in-plane
spacing (x12); the figure shows the acquired slices (each drawn over its 8 mm) and each method,
whole and zoomed into the right lung, in the lung window.

Without a truth, sharpness is judged against the acquired slices themselves: ``sharpness`` is the
in-plane gradient energy of the synthesised slices farthest from any acquired one (the middle
third of each gap) over that of the acquired slices (1.0: as sharp as what the scanner gave;
:func:`hrinet.evaluation.metrics.gradient_energy`). Printed per method, and in the panel titles.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from hrinet.core.constants import CLASSICAL_METHODS, QUALITIES
from hrinet.core.io import read_volume
from hrinet.core.preview import coronal
from hrinet.evaluation.metrics import gradient_energy
from hrinet.methods.engine import upsample_z
from hrinet.methods.registry import create_interpolator
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VOLUME = "chest-lungdx-8mm.nrrd"
#: The lung window (HU), as bench_stress.py's coronal figure.
WINDOW = (-1350, 150)


def middle_slices(n_out: int, factor: int) -> np.ndarray:
    """Indices of the synthesised slices in the middle third of each gap."""
    offsets = np.arange(n_out) % factor
    return np.flatnonzero((offsets >= factor / 3) & (offsets <= 2 * factor / 3))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("volume", nargs="?", default=str(SHARED_CT / VOLUME))
    p.add_argument("--methods", default="linear,flow,hrinet")
    p.add_argument("--quality", default="standard", choices=QUALITIES, help="the learned model's --quality")
    p.add_argument("--out", default="out/chest-8mm-coronal.png")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thick = read_volume(args.volume)
    sx, _, sz = thick.spacing
    outputs, scores = {}, {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        interp = None if method in CLASSICAL_METHODS else create_interpolator(
            method, device="cpu", quality=args.quality)
        iso = upsample_z(thick, method=method, device="cpu", interpolator=interp)
        outputs[method] = iso
        factor = round(sz / iso.spacing[2])
        known = iso.array[::factor]
        mid = iso.array[middle_slices(iso.array.shape[0], factor)]
        scores[method] = gradient_energy(mid) / gradient_energy(known)
        print(f"{method}: x{factor}, {iso.array.shape[0]} slices, {time.perf_counter() - t0:.0f} s, "
              f"sharpness of the mid-gap slices {scores[method]:.3f} of the acquired slices'",
              flush=True)
    first = next(iter(outputs.values()))
    factor = round(sz / first.spacing[2])
    y = thick.array.shape[1] // 2
    # each acquired slice drawn over the half gaps either side of it (nearest neighbour)
    acquired = thick.array[np.rint(np.arange(first.array.shape[0]) / factor).astype(int)]
    panels = [("acquired, 8 mm", coronal(acquired, y))] + [
        (f"{m} (sharpness {scores[m]:.2f})", coronal(v.array, y)) for m, v in outputs.items()]
    h, w = panels[0][1].shape
    zoom = (slice(h // 4, 3 * h // 4), slice(w // 8, w // 2))  # the right lung, middle half
    fig, axes = plt.subplots(2, len(panels), figsize=(3.3 * len(panels), 7.2))
    for col, (name, img) in enumerate(panels):
        for row, view in enumerate((img, img[zoom])):
            ax = axes[row, col]
            ax.imshow(view, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1],
                      aspect=first.spacing[2] / sx, origin="upper")
            ax.axis("off")
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(f"{Path(args.volume).name}: coronal, x{factor} to isotropic (no thin truth "
                 "exists); below, the right lung zoomed", fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    from PIL import Image  # matplotlib's own dependency

    Image.open(args.out).convert("L").save(args.out, optimize=True)  # grey: a third the bytes
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
