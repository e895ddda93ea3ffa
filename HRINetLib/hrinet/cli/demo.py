"""``make demo``: a thick-slice phantom made isotropic, saved as NRRD with a PNG comparison.

Run as ``python -m hrinet.cli.demo --out out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from hrinet.core.io.atomic import atomic_write, complete_png
from hrinet.core.io import write_volume
from hrinet.core.phantom import make_phantom
from hrinet.core.preview import coronal
from hrinet.methods import default_method
from hrinet.methods.engine import upsample_z


def _coronal(a: np.ndarray, spacing_z: float, spacing_y: float) -> np.ndarray:
    """Coronal reformat (z, x) through the middle row, the last slice on top (as the preview and
    Slicer show it), stretched to physical aspect."""
    img = coronal(a).astype(np.float32)
    return np.repeat(img, max(1, int(round(spacing_z / spacing_y))), axis=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out")
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--method", default=None, help="default: the shipped model, else cubic")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k = args.factor
    method = args.method or default_method()
    thin_mm, thick_mm, n_thick = 1.0, 1.0 * k, 41
    thick = make_phantom(size=(192, 192, n_thick), spacing=(1.0, 1.0, thick_mm), seed=7)
    truth = make_phantom(size=(192, 192, (n_thick - 1) * k + 1), spacing=(1.0, 1.0, thin_mm),
                         seed=7, noise=0)
    start = time.perf_counter()
    iso = upsample_z(thick, factor=k, method=method)
    seconds = time.perf_counter() - start
    lin = upsample_z(thick, factor=k, method="linear")
    nrrd = write_volume(iso, out / "demo-isotropic.nrrd", overwrite=True)
    write_volume(thick, out / "demo-thick.nrrd", overwrite=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"input: {thick_mm:g} mm slices", _coronal(thick.array, thick_mm, 1.0)),
              ("linear", _coronal(lin.array, 1.0, 1.0)),
              (f"{method} (x{k})", _coronal(iso.array, 1.0, 1.0)),
              ("phantom truth, 1 mm (noise-free)", _coronal(truth.array, 1.0, 1.0))]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), layout="constrained")
    for ax, (title, img) in zip(axes, panels):
        shown = ax.imshow(img, cmap="gray", vmin=-1000, vmax=600, aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label="HU")
    fig.suptitle("Coronal reformat of the phantom (W1600 L-200)", fontsize=10)
    png = out / "demo-comparison.png"
    with atomic_write(png, verify=complete_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    x, y, z = iso.shape_xyz
    print(f"method {method}: {thick.array.shape[0]} slices at {thick_mm:g} mm -> {z} at "
          f"{iso.spacing[2]:g} mm ({x} x {y} x {z}) in {seconds:.1f} s")
    print(f"isotropic volume: {nrrd}")
    print(f"comparison PNG:   {png}")
    print(f"thick input:      {out / 'demo-thick.nrrd'}")
    print(f"next, as on your own CT: hrinet interpolate {out / 'demo-thick.nrrd'} "
          f"{out / 'my-iso.nrrd'} --preview {out / 'my-iso.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
