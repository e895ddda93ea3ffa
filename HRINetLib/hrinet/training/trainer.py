"""Two-stage alternating training of the HRINet family (paper Sec. 3), resumable and repeatable.

Stage I trains the autoencoder with the ACAI critic D1. Stage II alternates

- step I (unsupervised): reconstruction content loss, ``lambda * ||D1(x_a)||^2`` and
  ``beta * log(1 - D2(x_a))``; D1 learns ``||D1(x_a) - a||^2 + ||D1(g x + (1 - g) AE(x))||^2``
  (eq. 2) and D2 the PatchGAN real/fake cross-entropy;
- step II (supervised): a group of ``n`` consecutive slices of one volume, the two ends in and the
  ``n - 2`` inner slices at ``a = 1 - k/(n-1)`` as targets (``n = 7``: five targets, a = k/6).

Content loss is pixel MSE or, for ``hrinet-perceptual``, the MSE between the mixed-level features
of a frozen copy of the stage-I encoder. Which stages and terms each variant uses is its record's
(:mod:`hrinet.core.variants`).

The parts of a run live in their own modules: where it starts (:mod:`~hrinet.training.resume`,
:mod:`~hrinet.training.start`), what it draws (:mod:`~hrinet.training.sampling`), the steps
(:mod:`~hrinet.training.steps`), validation (:mod:`~hrinet.training.validation`) and the ranks
of a distributed run (:mod:`~hrinet.training.distributed`).

Checkpoints (one safetensors file, written atomically) hold every model, optimiser state and the
step; data sampling is a pure function of ``(seed, rank, step)``; so ``--resume`` continues
exactly and a killed run loses at most ``checkpoint_minutes``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from hrinet import __version__
from hrinet.core.io.atomic import write_text
from hrinet.core.errors import Cancelled, HRINetError
from hrinet.core.io import read_volume
from hrinet.learned.inference import resolve_device
from hrinet.learned.models import Generator, memory_format_for
from hrinet.learned.networks import build_generator, build_models
from hrinet.training.losses import CRITIC_CONTEXT
from hrinet.learned.weights import save_weights
from hrinet.training.checkpoint import (
    CHECKPOINT,
    add_module,
    flatten_optimizer,
    module_state,
    restore_optimizer,
    write_checkpoint,
)
from hrinet.training.config import ResolvedSettings, TrainConfig
from hrinet.training.data import step_rng
from hrinet.training.distributed import unwrap, wrap
from hrinet.training.lineage import training_metadata, volume_summaries
from hrinet.training.resume import check_fresh_folder, resume_run
from hrinet.training.run_log import RunLog
from hrinet.training.sampling import make_sampler, reading_warnings
from hrinet.training.start import model_config, starting_generator
from hrinet.training.steps import StepsMixin
from hrinet.training.validation import describe_validation, record_validation, validation_scores


class Trainer(StepsMixin):
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
        self.progress, self.cancel, self.log = progress, cancel, log
        resumed = resume_run(self.out, overrides, log) if resume else None
        if resumed is None:
            check_fresh_folder(self.out, cfg.variant)
        else:
            cfg = resumed.config
        #: Settings changed when the run was resumed: ``[{"step", "changed": {key: [old, new]}}]``.
        self.resume_changes: List[dict] = resumed.changes if resumed else []
        cfg.check()
        self.cfg = cfg
        self.runlog = RunLog(self.out, rank, f"{cfg.variant} training losses")
        self.device = resolve_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.mcfg = model_config(cfg, resumed.state if resumed else None)
        context = CRITIC_CONTEXT if cfg.adversarial_context else 0
        models = build_models(self.mcfg, patch_context=context)
        if cfg.init_weights and resumed is None:
            models["generator"] = starting_generator(cfg, self.mcfg)
            self.mcfg = models["generator"].cfg
        self.G = models["generator"].to(self.device)
        self.D1 = models["critic"].to(self.device)
        self.D2 = models["patchgan"].to(self.device)
        #: The frozen stage-I encoder of the perceptual loss, made when stage II begins.
        self.frozen: Optional[Generator] = None
        #: The weight average (``cfg.ema``), which validation and export use.
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
        self.sampler = make_sampler(cfg, self.mcfg, volumes)
        if self.log and rank == 0:
            for text in reading_warnings(volumes, self.sampler):
                self.log(f"warning: {text}")
        if resumed is not None:
            self._load(resumed.tensors, resumed.state)
        if cfg.ema > 0 and self.ema_G is None:
            self.ema_G = copy.deepcopy(self.G).eval().requires_grad_(False)
        if world > 1:
            self.G, self.D1, self.D2 = (wrap(m, self.device) for m in (self.G, self.D1, self.D2))
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
    def resolved(self) -> ResolvedSettings:
        """The settings derived from the configuration (:meth:`TrainConfig.resolved`), always
        those of the current ``cfg`` (a stage-I start or a changed iteration count moves them)."""
        return self.cfg.resolved()

    def in_stage1(self) -> bool:
        return self.step < self.resolved.stage1_iterations

    def phase(self) -> str:
        """'stage1', 'step1' or 'step2' for the current step."""
        if self.in_stage1():
            return "stage1"
        s = self.cfg.spec
        if not s.supervised:
            return "step1"
        if not s.unsupervised:
            return "step2"
        k = (self.step - self.resolved.stage1_iterations) % (self.cfg.supervised_ratio + 1)
        return "step1" if k == 0 else "step2"

    def train_step(self) -> dict:
        """One generator update (plus its critics'), chosen by :meth:`phase`."""
        phase = self.phase()
        if phase != "stage1" and self.frozen is None and self.cfg.spec.frozen_encoder:
            self.frozen = copy.deepcopy(unwrap(self.G)).eval().requires_grad_(False)
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
                for e, w in zip(self.ema_G.parameters(), unwrap(self.G).parameters()):
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
        return self.ema_G if self.ema_G is not None else unwrap(self.G)

    def validate(self) -> dict:
        """Score the model against linear on each validation volume (rank 0), recorded in
        ``val.jsonl``, told in words and kept as :attr:`last_val`."""
        if not self.cfg.val or self.rank != 0:
            return {}
        results = validation_scores(self.final_generator().eval(), self.device, self.cfg)
        unwrap(self.G).train()
        self.last_val = {"step": self.step, **results}
        record_validation(self.out, self.last_val)
        if self.log:
            self.log(f"validation at step {self.step}: {describe_validation(results)}")
        return self.last_val

    # ---- checkpoints ---------------------------------------------------------------------
    def _state(self) -> Tuple[dict, dict]:
        """The checkpoint's tensors (every model, the optimisers' state) and training state."""
        tensors: dict = {}
        for prefix, model in (("generator", unwrap(self.G)), ("critic", unwrap(self.D1)),
                              ("patchgan", unwrap(self.D2)), ("frozen", self.frozen),
                              ("ema", self.ema_G)):
            if model is not None:
                add_module(prefix, model, tensors)
        opt_meta = {n: flatten_optimizer(n, o, tensors) for n, o in self.opt.items()}
        meta = {"step": self.step, "config": self.cfg.to_dict(), "model": self.mcfg.to_dict(),
                "resume_changes": self.resume_changes, "train_seconds": self.train_seconds,
                "volumes": self.volume_records,
                "optimizers": opt_meta, "last_val": self.last_val, "version": __version__}
        return tensors, meta

    @cached_property
    def volume_records(self) -> List[dict]:
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
        """Continue from a checkpoint's tensors and training state (:meth:`_state`)."""
        for name, m in (("generator", self.G), ("critic", self.D1), ("patchgan", self.D2)):
            m.load_state_dict(module_state(name, tensors))
        for prefix in ("frozen", "ema"):
            saved = module_state(prefix, tensors)
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
        meta = training_metadata(self.cfg, self.volume_records, self.step,
                                 self.last_val, self.resume_changes, self.train_seconds)
        return save_weights(self.final_generator(), path, meta)
