"""The two-body family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Reports every ``report_every`` steps (and at the last step): ``step``, ``epoch``, ``phase``,
``total_steps``, ``train_loss`` (mean since the last report), ``val_loss``, ``val_accel_err``
(mean acceleration error in % at the validation orbits' states: comparable across losses, the
metric a sweep should rank by), ``lr``,
``steps_per_s``, ``nfe_per_step`` (forward solver evaluations per step), with a checkpoint.
The last report adds the test metrics (:mod:`.metrics`). A checkpoint holds the model, the
optimiser, the step and the RNG states, so a resumed run repeats an uninterrupted one bit
for bit on CPU.
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any, Mapping

import torch

from trainables.common import checkpoint
from trainables.common.errors import DivergedError
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .augment import augment
from .config import TwoBodyConfig, phase_steps
from .data import SegmentBatch, TrainingData
from .dataset import OrbitArrays
from .evaluate import evaluate
from .export import export_model
from .field_map import write_field_map
from .losses import get_loss
from .metrics import point_errors
from .model import VectorField, integrate



def run(config: Mapping[str, Any] | TwoBodyConfig, reporter: Reporter) -> dict[str, float]:
    """Train one two-body neural ODE; returns the last report's metrics."""
    window = _Window()  # times the first step from here: data loading and model set-up included
    cfg = TwoBodyConfig.from_dict(config)
    device = pick_device(cfg.device)
    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.seed)
    data = TrainingData.load(cfg)
    field = VectorField(cfg).to(device=device, dtype=dtype)
    optimizer = torch.optim.Adam(field.parameters(), lr=cfg.lr)
    loss_fn = get_loss(cfg.loss)
    batches = torch.Generator().manual_seed(cfg.seed)
    phases = cfg.curriculum()
    segments = [data.phase_segments(cfg, ph.segment_length, ph.orbit_fraction, dtype, device) for ph in phases]
    ends = _cumulative([phase_steps(ph, len(tr), cfg.batch_size) for ph, (tr, _) in zip(phases, segments)])
    state = {"model": field, "optimizer": optimizer, "batch_rng": batches}
    step, _ = checkpoint.restore_training(reporter.restore_dir(), state)
    reporter.tags({"train_dataset_sha256": data.train_dataset.content_hash,
                   "val_dataset_sha256": data.val_dataset.content_hash if data.val_dataset else ""})

    last: dict[str, float] = {}
    for p, (phase, (train, val)) in enumerate(zip(phases, segments)):
        start = ends[p - 1] if p else 0
        while step < ends[p]:
            lr = phase.lr * _schedule(cfg.lr_schedule, (step - start) / (ends[p] - start))
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = _sample(train, cfg.batch_size, batches)
            batch = SegmentBatch(augment(batch.states, cfg.augment, batches), batch.dt)
            pred, nfe = integrate(field, batch.states[:, 0], batch.dt, batch.states.shape[1], cfg, step)
            loss = loss_fn(pred, batch.states, cfg.mse_weight)
            if not torch.isfinite(loss):
                raise DivergedError(f"{cfg.loss} is {loss.item()}", step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(field.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            window.add(loss.item(), nfe)
            if step % cfg.report_every == 0 or step == ends[-1]:
                last = {"epoch": step * min(cfg.batch_size, len(train)) / len(train), "phase": p,
                        "total_steps": ends[-1], "lr": lr, **window.flush(),
                        "val_loss": _val_loss(field, val, cfg, loss_fn, step),
                        "val_accel_err": _val_accel_err(field, data.val)}
                reports = step // cfg.report_every
                if step == ends[-1] or (cfg.eval_every_reports and reports % cfg.eval_every_reports == 0):
                    field.eval()
                    last.update(evaluate(field, cfg, data.r_range_km,
                                         reporter.artifact_dir() if step == ends[-1] else None))
                    if step == ends[-1]:
                        physical = data.train_physical()
                        write_field_map(field, physical, data.r_range_km, reporter.artifact_dir())
                        export_model(field, physical, reporter.artifact_dir())
                        last.update(train_r_min_km=data.r_range_km[0], train_r_max_km=data.r_range_km[1])
                    field.train()
                with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
                    checkpoint.save_training(ckpt, step, state, cfg.to_dict())
                    reporter.report(step, last, ckpt)
                window.restart()
    return last


def _sample(segs: SegmentBatch, batch_size: int, generator: torch.Generator) -> SegmentBatch:
    """A random batch without replacement (all segments when there are no more than a batch)."""
    if len(segs) <= batch_size:
        return segs
    idx = torch.randperm(len(segs), generator=generator)[:batch_size].to(segs.states.device)
    return SegmentBatch(states=segs.states[idx], dt=segs.dt[idx])


@torch.no_grad()
def _val_loss(field: VectorField, val: SegmentBatch | None, cfg: TwoBodyConfig, loss_fn: Any, step: int) -> float:
    if val is None:
        return math.nan
    pred, _ = integrate(field, val.states[:, 0], val.dt, val.states.shape[1], cfg, step)
    return float(loss_fn(pred, val.states, cfg.mse_weight))


@torch.no_grad()
def _val_accel_err(field: VectorField, val: OrbitArrays | None) -> float:
    """Mean acceleration error (%) of the field at every sample of the validation orbits: the
    test sets' headline metric on orbits never trained on, comparable across losses and
    segment lengths (no integration; canonical units, the ratio is unit-free)."""
    if val is None:
        return math.nan
    param = next(field.parameters())
    y = torch.as_tensor(val.states, dtype=param.dtype, device=param.device)
    a_pred = field.acceleration(y).double().cpu().numpy()
    return float(point_errors(a_pred, val.acc, val.states[..., :3])["accel_err_pct"].mean())


def _schedule(kind: str, progress: float) -> float:
    """LR multiplier at ``progress`` in [0, 1) of a phase."""
    return 0.5 * (1.0 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0


def _cumulative(counts: list[int]) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out


class _Window:
    """Loss, solver evaluations and wall time since the last report."""

    def __init__(self) -> None:
        self.first_step_s: float | None = None
        self._t_start = time.perf_counter()
        self.restart()

    def restart(self) -> None:
        self.losses: list[float] = []
        self.nfe = 0
        self.t0 = time.perf_counter()

    def add(self, loss: float, nfe: int) -> None:
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self._t_start
        self.losses.append(loss)
        self.nfe += nfe

    def flush(self) -> dict[str, float]:
        n = max(1, len(self.losses))
        out = {"train_loss": sum(self.losses) / n, "nfe_per_step": self.nfe / n,
               "steps_per_s": len(self.losses) / max(time.perf_counter() - self.t0, 1e-9)}
        if self.first_step_s is not None:
            out["first_step_s"] = self.first_step_s
        return out
