"""The two-body family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Reports every ``report_every`` steps (and at the last step): ``step``, ``epoch``, ``phase``,
``total_steps``, ``train_loss`` (mean since the last report), ``val_loss``, ``val_accel_err``
(mean acceleration error in % at the validation orbits' states: comparable across losses, the
metric a sweep should rank by), ``lr``,
``steps_per_s``, ``nfe_per_step`` (forward solver evaluations per step), ``best_val_accel_err``,
``best_step``, ``stopped_early``, with a checkpoint.

The model with the lowest ``val_accel_err`` of each curriculum phase is kept
(:class:`~trainables.common.best.BestModel`); at the end of a phase it is the one that goes on,
and at the end of training the one evaluated: the last report adds the test metrics
(:mod:`.metrics`) of the best-on-validation model, and ``best_step`` says where it came from.
``patience`` reports without improvement end a phase early (0: never). The learning rate decays
to ``min_lr`` under the cosine schedule. A checkpoint holds the model, the optimiser, the step,
the RNG states and the best model so far, so a resumed run repeats an uninterrupted one bit for
bit on CPU.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.lr import scheduled_lr
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .augment import augment
from .config import TwoBodyConfig, phase_steps
from .data import SegmentBatch, TrainingData, val_name
from .dataset import OrbitArrays
from .evaluate import evaluate
from .export import export_model
from .field_map import write_field_map
from .losses import get_loss
from .metrics import point_errors
from .penalties import penalties, penalty_weights
from .model import VectorField, integrate



def run(config: Mapping[str, Any] | TwoBodyConfig, reporter: Reporter) -> dict[str, float]:
    """Train one two-body neural ODE; returns the last report's metrics."""
    window = _Window()  # times the first step from here: data loading and model set-up included
    cfg = TwoBodyConfig.from_dict(config)
    if cfg.replicates > 1:
        from .train_replicates import run_replicates  # imports this module

        return run_replicates(cfg, reporter, window)
    device = pick_device(cfg.device)
    dtype = getattr(torch, cfg.dtype)
    torch.manual_seed(cfg.seed)
    data = TrainingData.load(cfg)
    field = VectorField(cfg).to(device=device, dtype=dtype)
    optimizer = torch.optim.Adam(field.parameters(), lr=cfg.lr)
    loss_fn, weights = get_loss(cfg.loss), penalty_weights(cfg)
    batches = torch.Generator().manual_seed(cfg.seed)
    phases = cfg.curriculum()
    segments = [data.phase_segments(cfg, ph.segment_length, ph.orbit_fraction, dtype, device) for ph in phases]
    ends = _cumulative([phase_steps(ph, len(tr), cfg.batch_size) for ph, (tr, _) in zip(phases, segments)])
    state = {"model": field, "optimizer": optimizer, "batch_rng": batches}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), state)
    best = BestModel.from_state(cfg.patience, extras.get("best"))
    reporter.tags({"train_dataset_sha256": data.train_dataset.content_hash,
                   "val_dataset_sha256": data.val_dataset.content_hash if data.val_dataset else ""})

    last: dict[str, float] = {}
    for p, (phase, (train, val)) in enumerate(zip(phases, segments)):
        start = ends[p - 1] if p else 0
        while step < ends[p]:
            lr = scheduled_lr(cfg.lr_schedule, phase.lr, cfg.min_lr, (step - start) / (ends[p] - start))
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = _sample(train, cfg.batch_size, batches)
            batch = SegmentBatch(augment(batch.states, cfg.augment, batches), batch.dt)
            pred, nfe = integrate(field, batch.states[:, 0], batch.dt, batch.states.shape[1], cfg, step)
            loss = loss_fn(pred, batch.states, cfg.mse_weight)
            terms = {}
            if weights:
                extra, terms = penalties(field, pred, batch.states, weights)
                terms["loss_base"] = float(loss.detach())
                loss = loss + extra
            if not torch.isfinite(loss):
                raise DivergedError(f"{cfg.loss} is {loss.item()}", step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(field.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            window.add(loss.item(), nfe, terms)
            if step % cfg.report_every and step != ends[p]:
                continue
            last = {"epoch": step * min(cfg.batch_size, len(train)) / len(train), "phase": p,
                    "total_steps": ends[-1], "lr": lr, **window.flush(),
                    "val_loss": _val_loss(field, val, cfg, loss_fn, step),
                    "val_accel_err": _val_accel_err(field, data.val)}
            best.observe(last["val_accel_err"], step, field)
            phase_over = step == ends[p] or best.stop
            final = phase_over and p == len(phases) - 1
            last.update(best.metrics("val_accel_err", best.stop and step < ends[p]))
            if phase_over:  # the phase's best-on-validation model goes on (to the next phase, or to the tests)
                best.restore(field)
            if final:
                last.update(final_evaluation(field, cfg, data, reporter.artifact_dir()))
            elif cfg.eval_every_reports and (step // cfg.report_every) % cfg.eval_every_reports == 0:
                field.eval()
                last.update(evaluate(field, cfg, data.r_range_km, None))
                field.train()
            reported = step
            if phase_over:  # the checkpoint resumes at the next phase or at the end (patience may end either early)
                step = ends[p]
                if not final:
                    best.reset()
            with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
                checkpoint.save_training(ckpt, step, state, cfg.to_dict(), best=best.state())
                reporter.report(reported, last, ckpt)
            window.restart()
            if final:
                return last
    return last


def final_evaluation(field: VectorField, cfg: TwoBodyConfig, data: TrainingData, artifact_dir: Path) -> dict[str, float]:
    """The end-of-training metrics and artefacts of ``field`` (the best-on-validation model): the
    test sets (:func:`.evaluate.evaluate`), the field map, the exported model and the training
    radius range. ``dynsweep evaluate`` calls the same function on a stored checkpoint."""
    field.eval()
    out = evaluate(field, cfg, data.r_range_km, artifact_dir)
    physical = data.train_physical()
    write_field_map(field, physical, data.r_range_km, artifact_dir)
    export_model(field, physical, artifact_dir)
    field.train()
    return {**out, "train_r_min_km": data.r_range_km[0], "train_r_max_km": data.r_range_km[1]}


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training (:func:`final_evaluation`) under ``config`` (the saved
    config, possibly changed: solver, tolerances, test sets), on its test sets plus ``datasets``:
    dataset names (a standard test set, a rotated or mirrored variant, a file under the datasets
    folder) or ``train`` / ``val`` for the run's own training and validation orbits."""
    cfg = TwoBodyConfig.from_dict(config)
    named = {"train": cfg.train_dataset, "val": val_name(cfg)}
    if "val" in datasets and named["val"] is None:
        raise ConfigError("--datasets val: this run validated on a share of its training orbits (val_fraction > 0), "
                          "not on a validation dataset")
    extra = [named.get(d) or d for d in datasets]
    cfg = cfg.with_(test_datasets=list(dict.fromkeys([*cfg.test_datasets, *extra])))
    if cfg.replicates > 1:
        from .train_replicates import evaluate_replicates

        return evaluate_replicates(folder, cfg, artifact_dir)
    torch.manual_seed(cfg.seed)
    field = VectorField(cfg).to(device=pick_device(cfg.device), dtype=getattr(torch, cfg.dtype))
    load_evaluated(folder, field)  # the best-on-validation weights
    return final_evaluation(field, cfg, TrainingData.load(cfg), artifact_dir)


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
        self.terms: dict[str, list[float]] = {}
        self.nfe = 0
        self.t0 = time.perf_counter()

    def add(self, loss: float, nfe: int, terms: dict[str, float]) -> None:
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self._t_start
        self.losses.append(loss)
        for key, value in terms.items():
            self.terms.setdefault(key, []).append(value)
        self.nfe += nfe

    def flush(self) -> dict[str, float]:
        n = max(1, len(self.losses))
        out = {"train_loss": sum(self.losses) / n, "nfe_per_step": self.nfe / n,
               "steps_per_s": len(self.losses) / max(time.perf_counter() - self.t0, 1e-9)}
        out.update({key: sum(values) / len(values) for key, values in self.terms.items()})
        if self.first_step_s is not None:
            out["first_step_s"] = self.first_step_s
        return out
