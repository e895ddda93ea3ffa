"""Training runs on a lent GPU machine, several side by side, each stopped by the clock.

The GPU machine has PyTorch and OpenCV but no SimpleITK and none of ``../shared``: the training
volumes come packed (``pack_training_data.py``) and the ``--init`` weights copied beside them.
Each job is the library's own :class:`hrinet.training.trainer.Trainer`; its iteration count (and so its
learning-rate schedule) is set from the throughput measured over its first steps so that it ends
within ``--seconds``. Exported weights, sidecars and logs are copied to ``--out``.

Usage (on the GPU machine): python benchmarks/gpu/train_gpu.py --data .gpu/data --out $OUT
        --seconds 400 [--jobs flow-init,flow-fresh,acai] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "HRINetLib"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

FLOW = dict(variant="hrinet-flow", crop=256, batch=8, samples_per_group=4, lr_final=0.05,
            decay_start=0.5, ema=0.999, window_weight=0.03, ssim_weight=0.002, workers=6)
JOBS = {
    "flow-init": dict(FLOW, lr=2e-4, init_weights="init/hrinet-default.safetensors"),
    "flow-fresh": dict(FLOW, lr=3e-4),
    # the second call: overlapping thin reconstructions in training (x2 lost to cubic on
    # overlapping validation slices, and more training made it worse)
    "flow-ovl": dict(FLOW, lr=1e-4, overlap=0.4, workers=7,
                     init_weights="init/hrinet-default.safetensors"),
    "flow-ovl-log": dict(FLOW, lr=1e-4, overlap=0.4, workers=7, log_mse=True,
                         init_weights="init/hrinet-default.safetensors"),
    "acai": dict(variant="acai", crop=256, batch=16, lr=1e-4,
                 init_weights="init/hrinet-variant-acai.safetensors"),
}
#: Steps before the throughput is measured (workers start, kernels are chosen) and the steps
#: it is measured over.
WARMUP = (40, 160)


def run_job(name: str, data: Path, out: Path, seconds: float, device: str,
            warmup=WARMUP) -> None:
    from hrinet.core.errors import Cancelled
    from hrinet.training.trainer import TrainConfig, Trainer
    from pack_training_data import unpack

    t0 = time.monotonic()
    names, vols = unpack(data)
    spec = dict(JOBS[name])
    if spec.get("init_weights"):
        spec["init_weights"] = str(data.parent / spec["init_weights"])
    cfg = TrainConfig(data=names, iterations=10**7, val_every=0, device=device,
                      checkpoint_minutes=2.0, **spec)
    run = Path("/tmp/hrinet-gpu-runs") / name
    # the clock stops a job whose throughput fell after it was measured (nothing would come
    # back from a command killed at its limit)
    hard_stop = t0 + seconds + 20
    tr = Trainer(cfg, run, volumes=vols, log=lambda s: print(f"[{name}] {s}", flush=True),
                 cancel=lambda: time.monotonic() > hard_stop)
    tr.run(stop_at=warmup[0])
    t1, s1 = time.monotonic(), tr.step
    tr.run(stop_at=warmup[1])
    rate = (tr.step - s1) / (time.monotonic() - t1)
    left = seconds - (time.monotonic() - t0) - 15  # export and copy
    tr.cfg.iterations = tr.step + max(1, int(rate * left))
    print(f"[{name}] {rate:.2f} steps/s -> {tr.cfg.iterations} iterations", flush=True)
    try:
        weights = tr.run()
    except Cancelled as e:
        print(f"[{name}] {e}; exporting step {tr.step}", flush=True)
        weights = tr.export()
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in (weights, weights.with_suffix(".json"), run / "log.csv"):
        shutil.copy2(f, dest / f.name)
    wall = time.monotonic() - t0
    (dest / "job.json").write_text(json.dumps(dict(name=name, steps=tr.step, steps_per_s=rate,
                                                   wall_s=wall, device=str(tr.device))))
    print(f"[{name}] done: {tr.step} steps in {wall:.0f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=400)
    p.add_argument("--jobs", default=",".join(JOBS))
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", default=",".join(map(str, WARMUP)))
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    if args.job:
        run_job(args.job, data, out, args.seconds, args.device,
                tuple(int(x) for x in args.warmup.split(",")))
        return
    procs = [subprocess.Popen([sys.executable, __file__, "--data", str(data), "--out", str(out),
                               "--seconds", str(args.seconds), "--device", args.device,
                               "--warmup", args.warmup,
                               "--job", job], env=dict(os.environ, PYTHONUNBUFFERED="1"))
             for job in args.jobs.split(",")]
    codes = [q.wait() for q in procs]
    print("exit codes", dict(zip(args.jobs.split(","), codes)))


if __name__ == "__main__":
    main()
