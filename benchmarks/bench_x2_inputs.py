"""The two inputs that fixed x2 on overlapping reconstructions, measured.

    python benchmarks/bench_x2_inputs.py

1. Motion-free kernels along z on the validation volumes (decimate protocol, PSNR_HU of the
   synthesised slices): linear, the ``cubic`` method (interpolating cubic B-spline, whole-volume
   prefilter), Keys' 4-slice cubic (the model's only cubic before) and the 6-slice cubic spline of
   :func:`hrinet.methods.flow.spline_weights` (the candidate that replaced it).
2. :func:`hrinet.methods.flow.z_roughness` per volume of ``../shared/data/ct``, decimated x2 and x4: of the
   whole volume, and the 10-90% range over 40 random groups of six known slices, measured on
   whole slices (as the model is given it) and on 128^2 patches (what a patch-based network sees).
"""

from __future__ import annotations

import numpy as np
from hrinet.core.io import read_volume
from hrinet.evaluation.evaluate import evaluate_volume
from hrinet.methods.flow import keys_weights, spline_weights, z_roughness
from shared_ct import SHARED_CT  # benchmarks/shared_ct.py

VALIDATION = ["chest-lungfcp-1mm.nrrd"]
ALL = VALIDATION + ["chest-rider-0p8mm.nrrd", "thorax-2mm.nrrd", "chest-lidc-1mm.nrrd",
                    "head-ge-1p25mm.nrrd", "chest-cmbcrc-2p5mm.nrrd"]
GROUPS, PATCH = 40, 128


class _Kernel:
    """A fixed motion-free kernel along z (slices at ``offsets`` from the lower known one)."""

    precise = True

    def __init__(self, name, offsets, weights):
        self.name, self.offsets, self.weights = name, offsets, weights
        self.halo = max(-min(offsets), max(offsets) - 1)

    def interpolate(self, window, pairs, fractions):
        n = len(window)
        out = np.empty((len(pairs), len(fractions)) + window.shape[1:], np.float32)
        for i, p in enumerate(pairs):
            idx = [min(max(p + o, 0), n - 1) for o in self.offsets]
            for j, t in enumerate(fractions):
                out[i, j] = np.tensordot(self.weights(t), window[idx].astype(np.float32), 1)
        return out


def kernels() -> None:
    methods = {"keys4": _Kernel("keys4", [-1, 0, 1, 2], keys_weights),
               "spline6": _Kernel("spline6", [-2, -1, 0, 1, 2, 3], spline_weights)}
    print("| volume | factor | linear | cubic | keys4 | spline6 |\n|---|---|---|---|---|---|")
    for name in VALIDATION:
        rows = evaluate_volume(read_volume(SHARED_CT / name), name, [2, 4, 6],
                               ["linear", "cubic", "keys4", "spline6"], interpolators=methods)
        for k in (2, 4, 6):
            r = {row.method: row.psnr_hu for row in rows if row.factor == k}
            print(f"| {name} | x{k} | {r['linear']:.2f} | {r['cubic']:.2f} | {r['keys4']:.2f} | "
                  f"{r['spline6']:.2f} |")


def roughness() -> None:
    rng = np.random.default_rng(0)
    print("\n| volume | factor | whole volume | six whole slices (10-90%) | six 128^2 patches "
          "(10-90%) |\n|---|---|---|---|---|")
    for name in ALL:
        a = read_volume(SHARED_CT / name).array.astype(np.float32)
        for k in (2, 4):
            d = a[::k]
            whole = z_roughness(list(d))
            if len(d) < 6:
                continue
            slices, patches = [], []
            for _ in range(GROUPS):
                z = int(rng.integers(0, len(d) - 5))
                y = int(rng.integers(0, max(1, a.shape[1] - PATCH)))
                x = int(rng.integers(0, max(1, a.shape[2] - PATCH)))
                six = d[z:z + 6]
                slices.append(z_roughness(list(six)))
                patches.append(z_roughness(list(six[:, y:y + PATCH, x:x + PATCH]), step=1))
            p = lambda v: f"{np.percentile(v, 10):.2f}-{np.percentile(v, 90):.2f}"  # noqa: E731
            print(f"| {name} | x{k} | {whole:.2f} | {p(slices)} | {p(patches)} |")


def main() -> None:
    missing = [n for n in ALL if not (SHARED_CT / n).exists()]
    if missing:
        raise SystemExit(f"needs {SHARED_CT} ({', '.join(missing)} missing)")
    kernels()
    roughness()


if __name__ == "__main__":
    main()
