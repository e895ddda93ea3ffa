"""Two-stage alternating training of the HRINet family (paper Sec. 3), resumable and repeatable.

Stage I trains the autoencoder with the ACAI critic D1. Stage II alternates

- step I (unsupervised): reconstruction content loss, ``lambda * ||D1(x_a)||^2`` and
  ``beta * log(1 - D2(x_a))``; D1 learns ``||D1(x_a) - a||^2 + ||D1(g x + (1 - g) AE(x))||^2``
  (eq. 2) and D2 the PatchGAN real/fake cross-entropy;
- step II (supervised): a group of ``n`` consecutive slices of one volume, the two ends in and the
  ``n - 2`` inner slices at ``a = 1 - k/(n-1)`` as targets (``n = 7``: five targets, a = k/6).

Content loss is pixel MSE or, for ``hrinet-perceptual``, the MSE between the mixed-level features
of a frozen copy of the stage-I encoder. Which stages and terms each variant uses is in
:data:`VARIANT_SPECS`.

Checkpoints (one safetensors file, written atomically) hold every model, optimiser state and the
step; data sampling is a pure function of ``(seed, rank, step)``; so ``--resume`` continues
exactly and a killed run loses at most ``checkpoint_minutes``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from hrinet import __version__
from hrinet.core.io.atomic import write_text
from hrinet.core.constants import VARIANTS
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import read_volume
from hrinet.core.variants import variant
from hrinet.learned.inference import resolve_device
from hrinet.learned.models import Generator, ModelConfig, memory_format_for
from hrinet.learned.motion import grown
from hrinet.learned.variants import build_generator, build_models
from hrinet.learned.weights import load_weights, save_weights
from hrinet.training.checkpoint import (
    CHECKPOINT,
    PREVIOUS,
    checkpoint_to_resume,
    flatten_optimizer,
    restore_optimizer,
    write_checkpoint,
)
from hrinet.training.config import (  # noqa: F401
    STAGE1_RESULT,
    STAGE2_VARIANTS,
    VARIANT_SPECS,
    TrainConfig,
    VariantSpec,
)
from hrinet.training.data import SliceSampler, step_rng
from hrinet.training.distributed import unwrap as _unwrap
from hrinet.training.lineage import (  # noqa: F401
    export_checkpoint,
    init_lineage,
    training_metadata,
    volume_summaries,
)
from hrinet.training.losses import acai_critic_loss, generator_adversarial, ssim_torch  # noqa: F401
from hrinet.training.motion_data import MotionSampler
from hrinet.training.options import FIXED_ON_RESUME
from hrinet.training.run_log import RunLog
from hrinet.training.steps import StepsMixin
from hrinet.training.validation import ValidationMixin


def _same(a, b) -> bool:
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return norm(a) == norm(b)


class Trainer(StepsMixin, ValidationMixin):
    """One training run in folder ``out`` (fresh or resumed)."""

    def __init__(self, cfg: TrainConfig, out, resume: bool = False,
                 volumes: Optional[Sequence] = None, rank: int = 0, world: int = 1,
                 progress: Optional[Callable[[int, int, dict], None]] = None,
                 cancel: Optional[Callable[[], bool]] = None, log=print,
                 overrides: Optional[dict] = None):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise HRINetError(f"--out {self.out} is a file; give a folder for the run")
        self.rank, self.world = rank, world
        #: Settings changed when the run was resumed: ``[{"step", "changed": {key: [old, new]}}]``.
        self.resume_changes: List[dict] = []
        self.progress, self.cancel, self.log = progress, cancel, log
        ckpt = self.out / CHECKPOINT
        resumed = None
        if resume:
            _, tensors, saved = checkpoint_to_resume(self.out, log=log)
            resumed = (tensors, saved)
            cfg = TrainConfig.from_dict(saved["config"])
            changed = {}
            for key, value in (overrides or {}).items():  # what the user gave on resume
                old = getattr(cfg, key)
                if _same(old, value):
                    continue
                if key in FIXED_ON_RESUME:
                    raise HRINetError(f"a resumed run cannot change {key} ({old} -> {value}); "
                                      "its checkpoint holds a model for the first; start a new "
                                      "run (--init with the run's exported weights) instead")
                changed[key] = [old, value]
                setattr(cfg, key, value)
            self.resume_changes = list(saved.get("resume_changes", []))
            if changed:
                self.resume_changes.append({"step": int(saved["step"]), "changed": changed})
                if log:
                    log("resuming with " + ", ".join(f"{k} {a} -> {b}"
                                                     for k, (a, b) in changed.items()))
            if cfg.iterations < int(saved["step"]):
                raise HRINetError(f"the checkpoint is at step {saved['step']}, past "
                                  f"--iterations {cfg.iterations}; give more iterations")
        elif ckpt.exists() or (self.out / PREVIOUS).exists():
            raise HRINetError(f"{self.out} already holds a checkpoint; pass --resume to continue "
                              "it or choose another --out")
        if cfg.variant not in VARIANTS:
            raise HRINetError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
        if cfg.crop % 64 or cfg.crop < 64:
            raise HRINetError(f"crop {cfg.crop} must be a multiple of 64 (the encoder's stride), "
                              "e.g. 128 or 256")
        cfg.check()
        self.cfg = cfg
        self.runlog = RunLog(self.out, rank, f"{cfg.variant} training losses")
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        if resumed is not None and "model" in resumed[1]:
            # the architecture the checkpoint holds, which may predate today's defaults
            self.mcfg = ModelConfig.from_dict(resumed[1]["model"])
        else:
            overrides = {"channels": tuple(cfg.channels)} if cfg.channels else {}
            self.mcfg = ModelConfig.for_variant(cfg.variant, cfg.design_size, **overrides)
        models = build_models(self.mcfg)
        if cfg.init_weights and not resume:
            pretrained, meta = load_weights(cfg.init_weights)
            if meta["variant"] == STAGE1_RESULT and cfg.variant in STAGE2_VARIANTS:
                # the paper's shared pre-training: stage II starts from the stage-I result,
                # whose encoder is also the frozen E_I of the perceptual loss
                cfg.from_stage1 = True
                pretrained.cfg = dataclasses.replace(pretrained.cfg, variant=cfg.variant)
            elif meta["variant"] == cfg.variant and cfg.variant in STAGE2_VARIANTS:
                if cfg.spec.content == "perceptual":
                    raise HRINetError(
                        f"{cfg.variant} weights cannot be continued with --init: its frozen "
                        "encoder E_I (the stage-I encoder) is in the run's checkpoint, not in the "
                        "weights; continue the run with --resume, or train it again from the "
                        f"stage-I result (--init <{STAGE1_RESULT} weights>)")
                # stage-II weights went through stage I already: a continuation is stage II only
                cfg.from_stage1 = True
            elif meta["variant"] != cfg.variant:
                also = (f", or --variant {' / '.join(STAGE2_VARIANTS)} (stage II from this "
                        "stage-I result)" if meta["variant"] == STAGE1_RESULT else "")
                raise HRINetError(f"--init weights are variant {meta['variant']}, not "
                                  f"{cfg.variant}; pass --variant {meta['variant']}{also}")
            if variant(cfg.variant).motion:
                # older weights, today's candidates (each new one starts unused)
                old = pretrained.cfg
                pretrained = grown(pretrained, dataclasses.replace(
                    old, blend=old.blend or self.mcfg.blend, spline=old.spline or self.mcfg.spline,
                    roughness=old.roughness or self.mcfg.roughness))
            self.mcfg = pretrained.cfg
            models["generator"] = pretrained.train()
        self.G = models["generator"].to(self.device)
        self.D1 = models["critic"].to(self.device)
        self.D2 = models["patchgan"].to(self.device)
        self.frozen: Optional[Generator] = None
        self.ema_G: Optional[Generator] = None
        self.set_memory_format(memory_format_for(self.device))
        betas = tuple(cfg.adam_betas)
        self.opt = {n: torch.optim.Adam(m.parameters(), lr=cfg.lr, betas=betas)
                    for n, m in (("G", self.G), ("D1", self.D1), ("D2", self.D2))}
        self.step = 0
        #: Wall-clock seconds spent in :meth:`run` over every resume (the sidecar's ``seconds``).
        self.train_seconds = 0.0
        self.last_val: dict = {}
        self._batches = None  # the workers' batches (cfg.workers > 0)
        if volumes is None:
            volumes = [read_volume(p) for p in cfg.data]
        sampler_cls = MotionSampler if variant(cfg.variant).motion else SliceSampler
        self.sampler = sampler_cls(volumes, cfg.crop, names=[Path(p).name for p in cfg.data])
        self.sampler.spline = self.mcfg.spline
        self.sampler.roughness = self.mcfg.roughness
        self.sampler.drop_context = cfg.drop_context
        self.sampler.augment = cfg.augment
        self.sampler.cross_view = cfg.cross_view
        for text in [w for v in volumes for w in v.metadata.get("warnings", [])] + \
                self.sampler.warnings:  # e.g. which series of a DICOM folder was read
            if self.log and rank == 0:
                self.log(f"warning: {text}")
        if resumed is not None:
            self._load(*resumed)
        if cfg.ema > 0 and self.ema_G is None:
            self.ema_G = copy.deepcopy(self.G).eval().requires_grad_(False)
        if world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G, self.D1, self.D2 = (DDP(m, device_ids=ids) for m in (self.G, self.D1, self.D2))
        self._last_ckpt_time = time.monotonic()

    def set_memory_format(self, memory_format: torch.memory_format) -> None:
        """Lay out the models' weights and every batch in ``memory_format`` (the numbers are the
        same up to float rounding; only the speed changes)."""
        self.memory_format = memory_format
        for m in (self.G, self.D1, self.D2, self.frozen, self.ema_G):
            if m is not None:
                m.to(memory_format=memory_format)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        """A batch on the device, in the models' memory format."""
        return x.to(self.device).contiguous(memory_format=self.memory_format)

    @property
    def r(self) -> dict:
        """The configuration's derived settings (:meth:`TrainConfig.resolved`), always those of
        the current ``cfg`` (a stage-I start or a changed iteration count moves them)."""
        return self.cfg.resolved()

    def in_stage1(self) -> bool:
        return self.step < self.r["stage1_iterations"]

    def phase(self) -> str:
        """'stage1', 'step1' or 'step2' for the current step."""
        if self.in_stage1():
            return "stage1"
        s = self.cfg.spec
        if not s.supervised:
            return "step1"
        if not s.unsupervised:
            return "step2"
        k = (self.step - self.r["stage1_iterations"]) % (self.cfg.supervised_ratio + 1)
        return "step1" if k == 0 else "step2"

    def train_step(self) -> dict:
        """One generator update (plus its critics'), chosen by :meth:`phase`."""
        phase = self.phase()
        if phase != "stage1" and self.frozen is None and self.cfg.spec.content == "perceptual":
            self.frozen = copy.deepcopy(_unwrap(self.G)).eval().requires_grad_(False)
        lr = self.learning_rate(self.step)
        for opt in self.opt.values():
            for group in opt.param_groups:
                group["lr"] = lr
        rng = step_rng(self.cfg.seed, self.rank, self.step)
        if phase == "step2":
            logs = self.supervised_step(rng)
        else:
            logs = self.unsupervised_step(rng, use_d2=(phase == "step1" and self.cfg.spec.patchgan))
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            raise HRINetError(
                f"training diverged: {bad[0]} is {logs[bad[0]]} at step {self.step}; the last "
                f"good checkpoint in {self.out} is kept; lower --lr and resume")
        if self.ema_G is not None:
            with torch.no_grad():
                d = self.cfg.ema
                for e, w in zip(self.ema_G.parameters(), _unwrap(self.G).parameters()):
                    e.mul_(d).add_(w.detach(), alpha=1 - d)
        self.step += 1
        logs.update(step=self.step, phase=phase)
        return logs

    def learning_rate(self, step: int) -> float:
        """The schedule of :class:`TrainConfig` at ``step``."""
        start = self.cfg.decay_start * self.cfg.iterations
        if self.cfg.lr_final >= 1.0 or step < start:
            return self.cfg.lr
        t = min(1.0, (step - start) / max(1.0, self.cfg.iterations - start))
        f = self.cfg.lr_final + (1 - self.cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * t))
        return self.cfg.lr * f

    def final_generator(self) -> Generator:
        """What validation and export use: the weight average when enabled."""
        return self.ema_G if self.ema_G is not None else _unwrap(self.G)

    # ---- checkpoints ---------------------------------------------------------------------
    def _state(self) -> Tuple[dict, dict]:
        tensors = {}
        for name, m in (("generator", self.G), ("critic", self.D1), ("patchgan", self.D2)):
            for k, v in _unwrap(m).state_dict().items():
                tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
        for prefix, model in (("frozen", self.frozen), ("ema", self.ema_G)):
            if model is not None:
                for k, v in model.state_dict().items():
                    tensors[f"{prefix}.{k}"] = v.detach().cpu().contiguous()
        opt_meta = {n: flatten_optimizer(n, o, tensors) for n, o in self.opt.items()}
        meta = {"step": self.step, "config": self.cfg.to_dict(), "model": self.mcfg.to_dict(),
                "resume_changes": self.resume_changes, "train_seconds": self.train_seconds,
                "volumes": self.volumes,
                "optimizers": opt_meta, "last_val": self.last_val, "version": __version__}
        return tensors, meta

    @cached_property
    def volumes(self) -> List[dict]:
        """Name, voxel sha256, size and spacing of each training volume, for checkpoints and
        the sidecar (hashed once, not at every checkpoint)."""
        return volume_summaries(self.sampler)

    def save_checkpoint(self) -> Optional[Path]:
        """Write ``checkpoint.safetensors`` atomically (rank 0 only)."""
        if self.rank != 0:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        tensors, meta = self._state()
        path = write_checkpoint(self.out, tensors, meta)
        self._last_ckpt_time = time.monotonic()
        self.runlog.plot()
        return path

    def _load(self, tensors: Dict[str, torch.Tensor], meta: dict) -> None:
        for name, m in (("generator", self.G), ("critic", self.D1), ("patchgan", self.D2)):
            m.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                               if k.startswith(name + ".")})
        for prefix in ("frozen", "ema"):
            saved = {k[len(prefix) + 1:]: v for k, v in tensors.items()
                     if k.startswith(prefix + ".")}
            if saved:
                model = build_generator(self.mcfg).to(self.device, memory_format=self.memory_format)
                model = model.eval().requires_grad_(False)
                model.load_state_dict(saved)
                setattr(self, "frozen" if prefix == "frozen" else "ema_G", model)
        for n, o in self.opt.items():
            restore_optimizer(n, o, tensors, meta["optimizers"][n])
        self.step = int(meta["step"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self.last_val = meta.get("last_val", {})

    # ---- the loop ------------------------------------------------------------------------
    def run(self, stop_at: Optional[int] = None) -> Path:
        """Train to ``cfg.iterations`` (or stop early at ``stop_at``, saving a checkpoint).

        Returns the final weights path, or the checkpoint path when stopped early.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self.runlog.truncate(self.step)  # rows past the checkpoint would repeat after a resume
        write_text(self.out / "config.json", json.dumps(self.cfg.to_dict(), indent=2))
        if self.step == 0 and self.cfg.init_weights and self.cfg.val_every:
            self.validate()  # where a continuation starts: the first point of its curve
        self.G.train(), self.D1.train(), self.D2.train()
        pending: List[dict] = []
        t0 = t_last = time.monotonic()
        end = self.cfg.iterations if stop_at is None else min(stop_at, self.cfg.iterations)
        try:
            while self.step < end:
                if self.cancel is not None and self.cancel():
                    raise Cancelled(f"stopped at step {self.step}")
                logs = self.train_step()
                now = time.monotonic()
                logs["seconds"] = round(now - t0, 2)
                self.train_seconds += now - t_last
                t_last = now
                pending.append(logs)
                if self.progress:
                    self.progress(self.step, self.cfg.iterations, logs)
                if self.step % 20 == 0 or self.step == end:
                    self.runlog.append(pending)
                    pending = []
                    self.runlog.progress({"step": self.step, "iterations": self.cfg.iterations,
                                          "phase": logs.get("phase"), "loss_g": logs.get("loss_g"),
                                          "last_val": self.last_val})
                if self.cfg.val_every and self.step % self.cfg.val_every == 0:
                    self.validate()
                if time.monotonic() - self._last_ckpt_time > 60 * self.cfg.checkpoint_minutes:
                    self.runlog.append(pending)
                    pending = []
                    self.save_checkpoint()
        except (Cancelled, KeyboardInterrupt):
            self._batches = None  # ends the workers
            self.runlog.append(pending)
            self.save_checkpoint()
            raise Cancelled(f"stopped at step {self.step}; checkpoint saved in {self.out}; "
                            "continue with --resume")
        if self.step >= self.cfg.iterations:
            self._batches = None  # ends the workers (a run stopped early keeps them)
        self.runlog.append(pending)
        self.save_checkpoint()
        if self.step < self.cfg.iterations:
            return self.out / CHECKPOINT
        if self.cfg.val and not self.last_val.get("step") == self.step:
            self.validate()
            self.save_checkpoint()  # so that `hrinet export` of the run has the final scores
        return self.export()

    def export(self, path: Optional[Path] = None) -> Path:
        """Final weights ``<out>/<variant>.safetensors`` with the JSON sidecar."""
        path = path or self.out / f"{self.cfg.variant}.safetensors"
        if self.rank != 0:
            return path
        meta = training_metadata(self.cfg, self.volumes, self.step,
                                 self.last_val, self.resume_changes, self.train_seconds)
        return save_weights(self.final_generator(), path, meta)
