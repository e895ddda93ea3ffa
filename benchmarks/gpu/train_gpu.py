"""Training runs on a lent GPU machine, several side by side, each stopped by the clock.

The GPU machine has PyTorch and OpenCV but no SimpleITK and none of ``../shared``: the training
volumes come packed (``pack_training_data.py``) and the ``--init`` weights copied beside them.
Each job is the library's own :class:`hrinet.training.trainer.Trainer`; its iteration count (and so its
learning-rate schedule) is set from the throughput measured over its first steps so that it ends
within ``--seconds``. Exported weights, sidecars and logs are copied to ``--out``.

A lease ends the machine: each job's checkpoint comes back with its weights, and the next lease
continues it (``--resume`` the folder the last one returned: same step, optimiser and schedule).
``--dry-run`` runs the same jobs on a CPU at toy sizes (the test suite does, so the script
cannot rot between leases).

Usage (on the GPU machine): python benchmarks/gpu/train_gpu.py --data .gpu/data --out $OUT
        --seconds 400 [--jobs flow-corpus,acai] [--device cuda] [--resume .gpu/returned]
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
    # the default continued on the corpus's training split with the scanner augmentations of
    # the trust issue, as the CPU's tenth stage (docs/results.md), at GPU sizes
    "flow-corpus": dict(FLOW, lr=5e-5, overlap=0.4, workers=7, log_mse=True, drop_context=0.25,
                        augment=0.25, group_sizes=(3, 3, 4, 5, 6, 7, 8, 9), ssim_weight=0.3,
                        window_weight=0.0, init_weights="init/hrinet-default.safetensors"),
    "acai": dict(variant="acai", crop=256, batch=16, lr=1e-4,
                 init_weights="init/hrinet-variant-acai.safetensors"),
    # the paper's stage II toward its 50k iterations: HRINet-MSE continued from its shipped
    # weights; HRINet-Perceptual from the stage-I result (ACAI), whose encoder is its frozen E_I
    # (its own weights cannot be continued: E_I is not in them); later leases --resume both
    "hrinet-mse": dict(variant="hrinet-mse", crop=256, batch=16, lr=1e-4,
                       init_weights="init/hrinet-variant-hrinet-mse.safetensors"),
    "hrinet-perceptual": dict(variant="hrinet-perceptual", crop=256, batch=16, lr=1e-4,
                              init_weights="init/hrinet-variant-acai.safetensors"),
}
#: What ``--dry-run`` changes: toy sizes a 2-core CPU runs in seconds, no worker processes.
DRY_RUN = dict(crop=64, batch=1, samples_per_group=1, workers=0, checkpoint_minutes=0.05)
RUNS = Path("/tmp/hrinet-gpu-runs")
#: Steps before the throughput is measured (workers start, kernels are chosen) and the steps
#: it is measured over.
WARMUP = (40, 160)


def run_job(name: str, data: Path, out: Path, seconds: float, device: str,
            warmup=WARMUP, resume: Path | None = None, dry_run: bool = False,
            runs: Path = RUNS) -> None:
    """Train job ``name`` for about ``seconds`` (continuing ``resume/<name>`` when an earlier
    lease returned its checkpoint there) and copy weights, sidecar, log and checkpoint to
    ``out/<name>``."""
    from hrinet.core.errors import Cancelled
    from hrinet.core.variants import DEFAULT_VARIANT, variant
    from hrinet.training.trainer import TrainConfig, Trainer
    from pack_training_data import unpack

    t0 = time.monotonic()
    names, vols = unpack(data)
    spec = dict(JOBS[name], checkpoint_minutes=2.0)
    if dry_run:  # the flow-only settings (samples, workers) only where the variant takes them
        flow = variant(spec.get("variant", DEFAULT_VARIANT)).motion
        spec.update({k: v for k, v in DRY_RUN.items()
                     if flow or k not in ("samples_per_group", "workers")})
    if spec.get("init_weights"):
        spec["init_weights"] = str(data.parent / spec["init_weights"])
    cfg = TrainConfig(data=names, iterations=10**7, val_every=0, device=device, **spec)
    run = runs / name
    shutil.rmtree(run, ignore_errors=True)  # scratch: what an earlier lease left is in resume
    before = resume / name / "checkpoint.safetensors" if resume else None
    if before is not None and before.is_file():
        run.mkdir(parents=True)
        for f in ("checkpoint.safetensors", "log.csv"):
            if (resume / name / f).is_file():
                shutil.copy2(resume / name / f, run / f)
        print(f"[{name}] continuing {before}", flush=True)
    # the clock stops a job whose throughput fell after it was measured (nothing would come
    # back from a command killed at its limit)
    hard_stop = t0 + seconds + 20
    resumed = run.is_dir()
    tr = Trainer(cfg, run, resume=resumed, volumes=vols,
                 overrides=dict(iterations=10**7, device=device) if resumed else None,
                 log=lambda s: print(f"[{name}] {s}", flush=True),
                 cancel=lambda: time.monotonic() > hard_stop)
    start, rate = tr.step, None
    try:  # the clock may stop a slow job even while its throughput is measured
        tr.run(stop_at=start + warmup[0])
        t1, s1 = time.monotonic(), tr.step
        tr.run(stop_at=start + warmup[1])
        rate = (tr.step - s1) / (time.monotonic() - t1)
        left = seconds - (time.monotonic() - t0) - 15  # export and copy
        tr.cfg.iterations = tr.step + max(1, int(rate * left))
        print(f"[{name}] {rate:.2f} steps/s -> {tr.cfg.iterations} iterations", flush=True)
        weights = tr.run()
    except Cancelled as e:
        print(f"[{name}] {e}; exporting step {tr.step}", flush=True)
        weights = tr.export()
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    # Trainer.run saved the checkpoint on either path: the next lease continues from it
    for f in (weights, weights.with_suffix(".json"), run / "log.csv",
              run / "checkpoint.safetensors"):
        if f.is_file():  # no log before the first step
            shutil.copy2(f, dest / f.name)
    wall = time.monotonic() - t0
    (dest / "job.json").write_text(json.dumps(dict(name=name, steps=tr.step, started_at=start,
                                                   steps_per_s=rate, wall_s=wall,
                                                   device=str(tr.device), dry_run=dry_run)))
    print(f"[{name}] done: {tr.step} steps in {wall:.0f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seconds", type=float, default=400)
    p.add_argument("--jobs", default=",".join(JOBS))
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", default=",".join(map(str, WARMUP)))
    p.add_argument("--resume", help="the folder an earlier lease returned: each job with a "
                   "checkpoint there continues it")
    p.add_argument("--dry-run", action="store_true", help="toy sizes on a CPU (the tests)")
    p.add_argument("--runs", default=str(RUNS), help="scratch folder of the runs")
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args()
    data, out = Path(args.data), Path(args.out)
    if args.job:
        run_job(args.job, data, out, args.seconds, args.device,
                tuple(int(x) for x in args.warmup.split(",")),
                Path(args.resume) if args.resume else None, args.dry_run, Path(args.runs))
        return
    common = ["--data", str(data), "--out", str(out), "--seconds", str(args.seconds),
              "--device", args.device, "--warmup", args.warmup, "--runs", args.runs]
    common += ["--resume", args.resume] if args.resume else []
    common += ["--dry-run"] if args.dry_run else []
    procs = [subprocess.Popen([sys.executable, __file__, *common, "--job", job],
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
             for job in args.jobs.split(",")]
    codes = [q.wait() for q in procs]
    print("exit codes", dict(zip(args.jobs.split(","), codes)))
    sys.exit(max(codes, default=0))


if __name__ == "__main__":
    main()
