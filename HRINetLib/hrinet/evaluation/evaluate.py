"""The evaluation protocols: make a thin volume thick, upsample it back, score against the truth.

- ``decimate``: keep every k-th slice (0, k, 2k, ...) of a thin volume, upsample that by k with
  each method (thickness 0: known slices are kept) and score only the synthesised slices against
  the slices that were dropped.
- ``slab``: simulate real thick slices, slab averages ``k`` thin slices wide centred on every k-th
  slice (:func:`hrinet.core.slab.simulate_thick`), upsample by k with the thickness given, and score
  every output slice, the known positions included, against the thin truth.

Slices past the last kept one cannot be interpolated and are not scored.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from hrinet.core.constants import WINDOW
from hrinet.core.io.atomic import atomic_write, complete_png, write_text
from hrinet.core.errors import HRINetError
from hrinet.core.slab import simulate_thick
from hrinet.core.volume import Volume
from hrinet.evaluation.metrics import Scores, score, truth_stats
from hrinet.methods import Interpolator, create_interpolator
from hrinet.methods.engine import upsample_z

CSV_COLUMNS = ["volume", "factor", "method", "psnr_hu", "psnr_win", "ssim_win", "rmse_hu"]
PROTOCOLS = ("decimate", "slab")


@dataclass
class Row(Scores):
    """One line of ``metrics.csv``: which comparison, and its :class:`~hrinet.evaluation.metrics.Scores`
    (``grad_ratio``, ``blur`` and ``blur_truth`` go to ``sharpness.csv``)."""

    volume: str = ""
    factor: int = 0
    method: str = ""


def ordinal(k: int) -> str:
    """2nd, 3rd, 4th, 11th, 21st: for messages."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def check_factor(n: int, k: int, name: str = "the volume") -> None:
    """Refuse a factor ``k`` that leaves nothing to interpolate in ``n`` slices."""
    if (n - 1) // k < 1:
        raise HRINetError(f"{name} has {n} slices, too few to keep every {ordinal(k)} slice "
                          "and interpolate between them")


def decimate(volume: Volume, k: int) -> Volume:
    """Keep slices 0, k, 2k, ...; the z spacing grows by k; origin and direction are unchanged."""
    n = volume.array.shape[0]
    check_factor(n, k)
    m = (n - 1) // k + 1
    sx, sy, sz = volume.spacing
    return volume.with_array(volume.array[: (m - 1) * k + 1: k].copy(), (sx, sy, sz * k))


def synthesised_mask(n_out: int, k: int) -> np.ndarray:
    """True at output indices that were synthesised (not multiples of k)."""
    return (np.arange(n_out) % k) != 0


def protocol_input(volume: Volume, k: int, protocol: str = "decimate"):
    """``(thick, thickness, mask)``: the input made from thin ``volume`` at factor ``k`` under
    ``protocol``, the slice thickness to upsample it with, and which of the ``len(mask)`` output
    slices are scored against ``volume.array[:len(mask)]``.

    Example:
        >>> from hrinet.core.phantom import make_phantom
        >>> thick, thickness, mask = protocol_input(make_phantom(size=(32, 32, 13)), 4)
        >>> thick.array.shape[0], thickness, mask.nonzero()[0].tolist()
        (4, 0.0, [1, 2, 3, 5, 6, 7, 9, 10, 11])
    """
    if protocol == "slab":
        thick = simulate_thick(volume, k)
        thickness = thick.metadata["slice_thickness_mm"]
    else:
        thick, thickness = decimate(volume, k), 0.0
    n_out = (thick.array.shape[0] - 1) * k + 1
    mask = synthesised_mask(n_out, k) if protocol == "decimate" else np.ones(n_out, bool)
    return thick, thickness, mask


def evaluate_volume(volume: Volume, name: str, factors: Sequence[int], methods: Sequence[str],
                    device: str = "auto", weights: Optional[Dict[str, str]] = None,
                    keep: Optional[Callable[[int, str, np.ndarray], None]] = None,
                    progress: Optional[Callable[[str], None]] = None,
                    interpolators: Optional[Dict[str, Interpolator]] = None,
                    protocol: str = "decimate", precision: str = "auto") -> List[Row]:
    """Score each method at each factor on ``volume`` under ``protocol`` (see the module);
    learned methods run in ``precision``.

    ``weights`` maps a method name to a weights file; ``interpolators`` maps a name to an already
    made method (training validates its model in the making this way); ``keep(k, method,
    output_array)`` receives every upsampled array (used to draw figures).
    """
    if protocol not in PROTOCOLS:
        raise HRINetError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    rows: List[Row] = []
    interps = dict(interpolators or {})
    for m in methods:
        if m not in interps:
            interps[m] = create_interpolator(m, device=device, weights=(weights or {}).get(m),
                                             precision=precision)
    for k in factors:
        thick, thickness, mask = protocol_input(volume, k, protocol)
        truth = volume.array[:len(mask)]
        stats = truth_stats(truth[mask])
        for m in methods:
            if progress:
                progress(f"{name} x{k} {m}")
            up = upsample_z(thick, factor=k, interpolator=interps[m], thickness=thickness)
            s = score(up.array[mask], truth[mask], stats)
            rows.append(Row(volume=name, factor=k, method=m, **asdict(s)))
            if keep:
                keep(k, m, up.array)
    return rows


def write_csv(rows: Sequence[Row], path: Path) -> None:
    """``metrics.csv`` with exactly :data:`CSV_COLUMNS`, written atomically."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([r.volume, r.factor, r.method] +
                   [f"{getattr(r, c):.4f}" for c in CSV_COLUMNS[3:]])
    write_text(path, buf.getvalue())


def markdown_table(rows: Sequence[Row]) -> str:
    """A Markdown table of every row, best PSNR_HU per volume and factor in bold."""
    best = {}
    for r in rows:
        key = (r.volume, r.factor)
        best[key] = max(best.get(key, -np.inf), r.psnr_hu)
    lines = ["| volume | factor | method | PSNR_HU dB | PSNR_win dB | SSIM_win | RMSE HU | "
             "sharpness |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = f"{r.psnr_hu:.2f}"
        if r.psnr_hu == best[(r.volume, r.factor)]:
            p = f"**{p}**"
        lines.append(f"| {r.volume} | x{r.factor} | {r.method} | {p} | {r.psnr_win:.2f} | "
                     f"{r.ssim_win:.4f} | {r.rmse_hu:.1f} | {r.grad_ratio:.3f} |")
    return "\n".join(lines) + "\n"


#: The figures' display window (the soft-tissue window of SSIM_win, HU) and the error maps'
#: range (HU).
FIGURE_WINDOW = WINDOW
ERROR_RANGE = (0, 200)


def strip_figure(volume: Volume, k: int, outputs: Dict[str, np.ndarray], title: str = ""):
    """A strip like the paper's Figure 3: the two known slices, each method, the ground truth,
    and each method's absolute error map, at the middle synthesised slice of the middle pair;
    a colour scale for the slices (HU) and one for the errors (HU). Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_out = next(iter(outputs.values())).shape[0]
    pair = (n_out - 1) // k // 2
    idx = pair * k + k // 2
    truth = volume.array[idx].astype(np.float32)
    known = [volume.array[pair * k], volume.array[(pair + 1) * k]]
    cols = 2 + len(outputs) + 1
    fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols + 1.2, 4.8), layout="constrained")
    win = dict(cmap="gray", vmin=FIGURE_WINDOW[0], vmax=FIGURE_WINDOW[1])
    panels = [(f"known z={pair * k}", known[0]), (f"known z={(pair + 1) * k}", known[1])]
    panels += [(m, o[idx]) for m, o in outputs.items()] + [("ground truth", truth)]
    for ax, (label, img) in zip(axes[0], panels):
        slices = ax.imshow(img, **win)
        ax.set_title(label, fontsize=8)
    errors = None
    for j, ax in enumerate(axes[1]):
        ax.axis("off")
        if 2 <= j < 2 + len(outputs):
            m = list(outputs)[j - 2]
            err = np.abs(outputs[m][idx].astype(np.float32) - truth)
            errors = ax.imshow(np.clip(err, *ERROR_RANGE), cmap="magma", vmin=ERROR_RANGE[0],
                               vmax=ERROR_RANGE[1])
            ax.set_title(f"|error| {m}", fontsize=8)
    for ax in axes[0]:
        ax.axis("off")
    fig.colorbar(slices, ax=list(axes[0]), shrink=0.8, label="HU (window W400 L40)")
    fig.colorbar(errors, ax=list(axes[1]), shrink=0.8, label="|error| HU")
    fig.suptitle(title or f"x{k}, slice {idx}", fontsize=9)
    return fig


def figure_strip(volume: Volume, k: int, outputs: Dict[str, np.ndarray], path: Path,
                 title: str = "") -> None:
    """Write :func:`strip_figure` to ``path`` (PNG), atomically."""
    fig = strip_figure(volume, k, outputs, title)  # selects the Agg backend first
    import matplotlib.pyplot as plt

    with atomic_write(path, verify=complete_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
