"""What evidence inside a thick case could guard an adaptation? (docs/results.md "Adapting to one case")

    python benchmarks/bench_adapt_evidence.py [--volume chest-lungfcp-1mm.nrrd] [--factor 4]

A validation volume is decimated by ``--factor``; the thin truth is kept aside to say what really
happened. Two experiments:

1. **Does any held-out evidence rank changes of the model as the truth does?** The shipped
   default's correction is scaled by alpha (0.7, 1.0, 1.3; 1.0 is the model itself), and each
   version is scored on the truth (``truth``) and on three kinds of evidence a thick case holds:
   ``thick x2`` (every other thick slice predicted from its neighbours: today's guard),
   ``in-plane, linear z`` (the volume resliced along y: planes one pixel apart are the slices,
   their (z, x) images resampled linearly in z to the pixel size; the central 20% of the planes,
   predicted ``spacing / pixel`` planes apart) and ``in-plane, model z`` (the same, resliced from
   the volume the model itself upsampled in z; the central 40%).
2. **SMORE-style fine-tuning**: the default fine-tuned (200 steps, lr 3e-5, thin input only) on
   the planes outside that central band, with linear z; scored on the band and on the truth.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np
import torch
from hrinet.core.io import read_volume
from hrinet.core.variants import gap_group_sizes
from hrinet.core.volume import Volume
from hrinet.evaluation.evaluate import decimate, evaluate_volume
from hrinet.learned.inference import make_interpolator
from hrinet.learned.weights import DEFAULT_NAME, find_weights, load_weights
from hrinet.methods.engine import upsample_z
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

CPU = torch.device("cpu")


def linear_z(thick: Volume) -> np.ndarray:
    """The thick volume resampled linearly in z to its pixel size, ``(z, y, x)``."""
    a = thick.array.astype(np.float32)
    n, s, p = a.shape[0], thick.spacing[2], thick.spacing[1]
    z = np.arange(0, (n - 1) * s + 1e-6, p) / s
    i = np.minimum(np.floor(z).astype(int), n - 2)
    f = (z - i)[:, None, None]
    return a[i] * (1 - f) + a[i + 1] * f


def planes(volume_zyx: np.ndarray, lo: float, hi: float, pixel: float) -> Volume:
    """Planes ``lo``-``hi`` (fractions of y) as a volume whose slices are the y planes."""
    y = volume_zyx.shape[1]
    band = volume_zyx[:, int(lo * y):int(hi * y)].transpose(1, 0, 2)
    return Volume(np.ascontiguousarray(band).astype(np.int16), spacing=(pixel,) * 3)


def scaled(model, alpha: float):
    m = copy.deepcopy(model)
    with torch.no_grad():
        m.head.weight.mul_(alpha)
        m.head.bias.mul_(alpha)
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(SHARED_CT))
    p.add_argument("--volume", default="chest-lungfcp-1mm.nrrd")
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--iterations", type=int, default=200)
    a = p.parse_args()
    import hrinet.training.motion_data as md
    from hrinet.training.trainer import TrainConfig, Trainer

    thin = read_volume(Path(a.data) / a.volume)
    k = a.factor
    thick = decimate(thin, k)
    pixel = thick.spacing[1]
    gap = max(2, round(thick.spacing[2] / pixel))
    start = str(find_weights(DEFAULT_NAME))
    base, _ = load_weights(start, device="cpu")

    def on(volume: Volume, factor: int, m) -> float:
        return evaluate_volume(volume, "evidence", [factor], ["m"],
                               interpolators={"m": make_interpolator(m, CPU)})[0].psnr_hu

    def on_truth(m) -> float:  # the decimate protocol on the thin volume: the truth's verdict
        return on(thin, k, m)

    lin = linear_z(thick)
    model_z = upsample_z(thick, factor=gap, interpolator=make_interpolator(base, CPU),
                         thickness=0).array
    band_lin, band_model = planes(lin, 0.4, 0.6, pixel), planes(model_z, 0.3, 0.7, pixel)
    print(f"{a.volume} x{k}: gap {gap} planes of {pixel:.3f} mm; PSNR_HU (dB)")
    print("| correction x | truth | thick x2 | in-plane, linear z | in-plane, model z |")
    print("|---|---|---|---|---|")
    for alpha in (0.7, 1.0, 1.3):
        m = scaled(base, alpha)
        print(f"| {alpha} | {on_truth(m):.2f} | {on(thick, 2, m):.2f} | "
              f"{on(band_lin, gap, m):.2f} | {on(band_model, gap, m):.2f} |", flush=True)

    md.SLAB_RATIOS, md.SLAB_PROBS = (0.0,), (1.0,)  # the case is thin (decimated) input
    train = [planes(lin, 0.0, 0.4, pixel), planes(lin, 0.6, 1.0, pixel)]
    crop = min(128, 64 * max(1, lin.shape[0] // 64))
    cfg = TrainConfig(variant="hrinet-flow", iterations=a.iterations, crop=crop, batch=4,
                      lr=3e-5, device="cpu", val_every=0, init_weights=start,
                      checkpoint_minutes=1e9, data=["case"],
                      # the gaps around the band's own (as measured: group sizes gap to gap + 2;
                      # at gap 2 the narrowest is 2, a gap needing one slice between)
                      group_sizes=gap_group_sizes((max(2, gap - 1), gap, gap + 1)))
    with tempfile.TemporaryDirectory() as tmp:
        tuned = Trainer(cfg, tmp, volumes=train, log=None)
        tuned.run()
        adapted = tuned.final_generator().eval()
    print(f"\nSMORE-style fine-tuning ({a.iterations} steps, lr 3e-5): held-out band "
          f"{on(band_lin, gap, base):.2f} -> {on(band_lin, gap, adapted):.2f}; truth "
          f"{on_truth(base):.2f} -> {on_truth(adapted):.2f}")


if __name__ == "__main__":
    main()
