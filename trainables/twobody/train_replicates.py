"""Seed replicates of one two-body config trained together (``replicates: N > 1``).

Replicate ``i`` is the trial ``seed + i`` would train alone: its own initial weights (drawn after
``torch.manual_seed(seed + i)``), its own batches and augmentation (a generator seeded
``seed + i``), its own optimiser state (Adam over the stacked weights is element-wise) and its own
best-on-validation model. All N run as one vectorised model
(:class:`~trainables.common.replicates.Replicated`): one solver call integrates the N batches
``(N, B, 6)`` with a shared step whose error norm is the worst replicate's (no replicate is
integrated less accurately than alone), one backward pass and one optimiser step serve all.

A replicate whose loss stops being finite, or whose solve fails (in training: the replicated
solve failed and it fails alone too; in validation), is dropped: its weights become NaN
(out of the shared step size and the losses), a line on stderr and the tag ``replicates_dropped``
say which and when; the trial fails only when every replicate has gone, with the class of the
last failure. Reports carry the mean over the live replicates under
each metric's name (what a sweep ranks), with ``_std``, ``_min``, ``_max`` and ``_r<i>`` for the
headline metrics (:func:`.config.replicate_spread`), ``replicates_live``, ``best_replicate``
(the live replicate with the lowest best validation error: its artefacts are the trial's) and
``replicate_steps_per_s``. A checkpoint holds every replicate, its generator, best model and
state, so a resumed trial continues bit for bit on CPU.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel
from trainables.common.errors import ConfigError, DivergedError, SolverError, TrialFailure
from trainables.common.lr import scheduled_lr
from trainables.common.nn import pick_device
from trainables.common.replicates import Replicated, aggregate, replicate_seeds
from trainables.common.reporter import Reporter

from .config import TwoBodyConfig, phase_steps, replicate_spread
from .data import SegmentBatch, TrainingData
from .evaluate import evaluate
from .losses import get_loss
from .model import VectorField, integrate
from .loop import cumulative, draw_batch, final_evaluation, val_accel_err, val_loss


def init_members(members: Sequence[TwoBodyConfig], device: torch.device, dtype: torch.dtype) -> list[VectorField]:
    """Each replicate's model as its single-seed trial initialises it."""
    fields = []
    for m in members:
        torch.manual_seed(m.seed)
        fields.append(VectorField(m).to(device=device, dtype=dtype))
    return fields


def run_replicates(cfg: TwoBodyConfig, reporter: Reporter, window: Any) -> dict[str, float]:
    """Train ``cfg.replicates`` seeds of ``cfg`` as one model; returns the last report's metrics."""
    device, dtype, n = pick_device(cfg.device), getattr(torch, cfg.dtype), cfg.replicates
    members = [cfg.with_(seed=s, replicates=1) for s in replicate_seeds(cfg.seed, n)]
    data = TrainingData.load(cfg)
    views = init_members(members, device, dtype)  # one plain model per replicate: validation, best, tests
    field = Replicated(views)
    optimizer = torch.optim.Adam(field.parameters(), lr=cfg.lr)
    loss_fn = get_loss(cfg.loss)
    rngs = [torch.Generator().manual_seed(m.seed) for m in members]
    phases = cfg.curriculum()
    segments = [_member_segments(data, members, ph.segment_length, ph.orbit_fraction, dtype, device) for ph in phases]
    ends = cumulative([phase_steps(ph, len(segs[0][0]), cfg.batch_size) for ph, segs in zip(phases, segments)])
    state = {"model": field, "optimizer": optimizer, **{f"batch_rng_{i}": g for i, g in enumerate(rngs)}}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), state)
    bests = [BestModel.from_state(0, b) for b in extras.get("best") or [None] * n]
    dropped = _Dropped(extras.get("dropped"), members, field, reporter.tags)
    reporter.tags({"train_dataset_sha256": data.train_dataset.content_hash,
                   "val_dataset_sha256": data.val_dataset.content_hash if data.val_dataset else ""})

    last: dict[str, float] = {}
    losses_since: list[list[float]] = [[] for _ in range(n)]
    for p, (phase, segs) in enumerate(zip(phases, segments)):
        start = ends[p - 1] if p else 0
        while step < ends[p]:
            lr = scheduled_lr(cfg.lr_schedule, phase.lr, cfg.min_lr, (step - start) / (ends[p] - start))
            for group in optimizer.param_groups:
                group["lr"] = lr
            drawn = [g.get_state() for g in rngs]
            batch = _batches([tr for tr, _ in segs], cfg, rngs)
            try:
                pred, nfe = integrate(field, batch.states[:, :, 0], batch.dt, batch.states.shape[2], cfg, step)
            except SolverError as err:  # drop the replicates that fail alone, then the same step again
                dropped.solver_failure(err, views, batch, cfg, step)
                for g, saved in zip(rngs, drawn):
                    g.set_state(saved)
                continue
            losses = [loss_fn(pred[i], batch.states[i], cfg.mse_weight) for i in range(n)]
            values = dropped.check_losses(losses, step)
            optimizer.zero_grad(set_to_none=True)
            sum(loss for i, loss in enumerate(losses) if dropped.live(i)).backward()
            field.zero_grad_of(list(dropped.steps))
            if cfg.grad_clip:
                field.clip_grad_norm(cfg.grad_clip)
            optimizer.step()
            dropped.settle()
            step += 1
            for i, value in enumerate(values):
                losses_since[i].append(value)
            window.add(statistics.fmean(losses_since[i][-1] for i in range(n) if dropped.live(i)), nfe, {})
            if step % cfg.report_every and step != ends[p]:
                continue
            per: list[dict[str, float]] = [{} for _ in range(n)]
            for i, view in enumerate(views):
                view.load_state_dict(field.member_state(i))
                values = dropped.guard(i, step, lambda: {"val_loss": val_loss(view, segs[i][1], members[i], loss_fn, step),
                                                         "val_accel_err": val_accel_err(view, data.val)})
                if values is not None:
                    bests[i].observe(values["val_accel_err"], step, view)
                    per[i] = {"train_loss": statistics.fmean(losses_since[i]), **values,
                              **bests[i].metrics("val_accel_err", False)}
            phase_over = step == ends[p]
            final = phase_over and p == len(phases) - 1
            if phase_over:  # each replicate's best-on-validation model goes on
                for i, view in enumerate(views):
                    if dropped.live(i):
                        bests[i].restore(view)
                        field.load_member(i, view.state_dict())
            flushed = window.flush()
            last = {"epoch": step * min(cfg.batch_size, len(segs[0][0])) / len(segs[0][0]), "phase": p,
                    "total_steps": ends[-1], "lr": lr, **flushed}
            if final:
                per = [{**m, **t} for m, t in zip(per, final_metrics(views, members, data, reporter.artifact_dir(),
                                                                     bests, dropped, step))]
                last.update({"train_r_min_km": data.r_range_km[0], "train_r_max_km": data.r_range_km[1]})
            live = [dropped.live(i) for i in range(n)]
            last.update({**aggregate(per, live, replicate_spread), "best_replicate": float(best_replicate(bests, live)),
                         "replicate_steps_per_s": flushed["steps_per_s"] * sum(live)})
            if phase_over and not final:
                for b in bests:
                    b.reset()
            with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
                checkpoint.save_training(ckpt, step, state, cfg.to_dict(), best=[b.state() for b in bests],
                                         dropped=dropped.steps)
                reporter.report(step, last, ckpt)
            window.restart()
            losses_since = [[] for _ in range(n)]
            if final:
                return last
    return last


def best_replicate(bests: Sequence[BestModel], live: Sequence[bool]) -> int:
    """The live replicate with the lowest best validation value (its artefacts are the trial's);
    without validation data (every best value infinite) the first live one."""
    return min((i for i in range(len(bests)) if live[i]), key=lambda i: bests[i].best_val)


class _Dropped:
    """The replicates dropped so far (``steps``: replicate -> step), said on stderr and in the tag
    ``replicates_dropped`` (``<replicate>@<step>`` each). A dropped replicate's weights become NaN
    (:meth:`Replicated.disable`): the shared solver's error norm and the losses leave it out. When
    the last live one goes, the trial fails (:class:`DivergedError`)."""

    def __init__(self, saved: Any, members: Sequence[TwoBodyConfig], field: Replicated,
                 tag: Callable[[dict[str, str]], None]) -> None:
        self.steps: dict[int, int] = {int(i): int(s) for i, s in (saved or {}).items()}
        self.members, self.field, self.tag = members, field, tag
        self.pending: list[int] = []  # dropped while a backward pass still needs their weights

    def live(self, i: int) -> bool:
        return i not in self.steps

    def drop(self, i: int, step: int, why: str, now: bool = True, kind: type[TrialFailure] = DivergedError) -> None:
        """Drop replicate ``i``; its weights become NaN now, or at :meth:`settle` (``now=False``).
        The last one gone fails the trial with ``kind`` (the class of what ended it)."""
        self.steps[i] = step
        self.pending.append(i)
        if now:
            self.settle()
        left = len(self.members) - len(self.steps)
        if left == 0:
            raise kind(f"every replicate failed (the last: {why})", step)
        what = "diverged" if kind is DivergedError else "failed"
        print(f"dynsweep: replicate {i} (seed {self.members[i].seed}) {what} at step {step} ({why}); "
              f"dropped, the means are over the {left} live replicates", file=sys.stderr, flush=True)
        self.tag({"replicates_dropped": " ".join(f"{r}@{s}" for r, s in sorted(self.steps.items()))})

    def settle(self) -> None:
        """Disable the replicates dropped since the last call (after the optimiser step)."""
        for i in self.pending:
            self.field.disable(i)
        self.pending = []

    def check_losses(self, losses: Sequence[torch.Tensor], step: int) -> list[float]:
        """Drop the live replicates whose loss is not finite (disabled at :meth:`settle`); returns
        every replicate's loss value."""
        values = [float(loss.detach()) for loss in losses]
        for i, value in enumerate(values):
            if self.live(i) and not math.isfinite(value):
                self.drop(i, step, f"{self.members[i].loss} is {value}", now=False)
        return values

    def guard(self, i: int, step: int, evaluate: Any) -> Any:
        """``evaluate()`` for live replicate ``i``; a solver failure or divergence drops it (None)."""
        if not self.live(i):
            return None
        try:
            return evaluate()
        except (SolverError, DivergedError) as err:
            self.drop(i, step, str(err), kind=type(err))
            return None

    def solver_failure(self, err: SolverError, views: Sequence[VectorField], batch: SegmentBatch,
                       cfg: TwoBodyConfig, step: int) -> None:
        """The replicated solve failed: integrate each live replicate's batch alone and drop those
        that fail; if none does (only their shared step failed), the trial fails with ``err``."""
        culprits = []
        for i, view in enumerate(views):
            if self.live(i):
                view.load_state_dict(self.field.member_state(i))
                with torch.no_grad():
                    try:
                        integrate(view, batch.states[i, :, 0], batch.dt[i], batch.states.shape[2], cfg, step)
                    except SolverError:
                        culprits.append(i)
        if not culprits:
            raise err
        for i in culprits:
            self.drop(i, step, str(err), kind=SolverError)


def evaluate_replicates(folder: Path, cfg: TwoBodyConfig, n: int, artifact_dir: Path) -> dict[str, float]:
    """``dynsweep evaluate`` of a checkpoint of ``n`` replicates: each live replicate's
    best-on-validation model (the latest weights where it kept none) evaluated as at the end of
    training under ``cfg`` (one replicate's config), aggregated as the last report was."""
    saved = checkpoint.load(folder)
    members = [cfg.with_(seed=s, replicates=1) for s in replicate_seeds(cfg.seed, n)]
    device, dtype = pick_device(cfg.device), getattr(torch, cfg.dtype)
    views = init_members(members, device, dtype)
    field = Replicated(views)
    checkpoint.apply_parts(saved, {"model": field}, Path(folder) / checkpoint.CHECKPOINT_FILE)
    bests = [BestModel.from_state(0, b) for b in saved.get("best") or [None] * n]
    dropped = _Dropped(saved.get("dropped"), members, field, lambda tags: None)
    for i, view in enumerate(views):
        view.load_state_dict(bests[i].weights if bests[i].weights is not None else field.member_state(i))
    data = TrainingData.load(cfg)
    per = final_metrics(views, members, data, artifact_dir, bests, dropped, int(saved.get("step", 0)))
    live = [dropped.live(i) for i in range(n)]
    return {**aggregate(per, live, replicate_spread), "best_replicate": float(best_replicate(bests, live)),
            "train_r_min_km": data.r_range_km[0], "train_r_max_km": data.r_range_km[1]}


def final_metrics(views: Sequence[VectorField], members: Sequence[TwoBodyConfig], data: TrainingData,
                  artifact_dir: Path, bests: Sequence[BestModel], dropped: "_Dropped", step: int
                  ) -> list[dict[str, float]]:
    """Each live replicate's end-of-training test metrics (empty for a dropped one; one whose
    evaluation fails in the solver is dropped). The artefacts (field map, exported model,
    per-orbit errors) are those of :func:`best_replicate`. ``dynsweep evaluate`` calls the same
    function on a stored checkpoint."""
    out: list[dict[str, float]] = [{} for _ in views]
    best = None
    while best is None:  # the best live replicate whose evaluation goes through writes the artefacts
        i = best_replicate(bests, [dropped.live(r) for r in range(len(views))])
        done = dropped.guard(i, step, lambda: final_evaluation(views[i], members[i], data, artifact_dir))
        if done is not None:
            best, out[i] = i, {k: v for k, v in done.items() if not k.startswith("train_r_")}  # reported once
    for i, (view, m) in enumerate(zip(views, members)):
        if i != best:
            view.eval()
            out[i] = dropped.guard(i, step, lambda: evaluate(view, m, data.r_range_km, None)) or {}
            view.train()
    return out


def _member_segments(data: TrainingData, members: Sequence[TwoBodyConfig], segment_length: int,
                     fraction: tuple[float, float], dtype: torch.dtype, device: torch.device
                     ) -> list[tuple[SegmentBatch, SegmentBatch | None]]:
    """Each replicate's training and validation segments: its own split when it validates on a
    share of its training orbits (the split follows the seed), else one set shared by all."""
    if members[0].val_fraction == 0.0:
        return [data.phase_segments(members[0], segment_length, fraction, dtype, device)] * len(members)
    segs = [data.phase_segments(m, segment_length, fraction, dtype, device) for m in members]
    if len({len(tr) for tr, _ in segs}) > 1:
        raise ConfigError("config.replicates: the seeds' training splits differ in size; use val_dataset instead "
                          "of val_fraction with replicates")
    return segs


def _batches(train: Sequence[SegmentBatch], cfg: TwoBodyConfig, rngs: Sequence[torch.Generator]) -> SegmentBatch:
    """Each replicate's batch (its own sample and augmentation), stacked: states ``(N, B, L, 6)``, dt ``(N, B)``."""
    drawn = [draw_batch(tr, cfg, g) for tr, g in zip(train, rngs)]
    return SegmentBatch(torch.stack([b.states for b in drawn]), torch.stack([b.dt for b in drawn]))
