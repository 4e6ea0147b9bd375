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

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.lr import scheduled_lr
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .config import TwoBodyConfig, phase_steps
from .data import TrainingData, val_name
from .evaluate import evaluate
from .loop import Window, cumulative, draw_batch, final_evaluation, val_accel_err, val_loss
from .losses import get_loss
from .penalties import penalties, penalty_weights
from .model import VectorField, integrate
from .train_replicates import evaluate_replicates, run_replicates



def run(config: Mapping[str, Any] | TwoBodyConfig, reporter: Reporter) -> dict[str, float]:
    """Train one two-body neural ODE; returns the last report's metrics."""
    window = Window()  # times the first step from here: data loading and model set-up included
    cfg = TwoBodyConfig.from_dict(config)
    if cfg.replicates > 1:
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
    ends = cumulative([phase_steps(ph, len(tr), cfg.batch_size) for ph, (tr, _) in zip(phases, segments)])
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
            batch = draw_batch(train, cfg, batches)
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
                    "val_loss": val_loss(field, val, cfg, loss_fn, step),
                    "val_accel_err": val_accel_err(field, data.val)}
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


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training (:func:`final_evaluation`) under ``config`` (the saved
    config, possibly changed: solver, tolerances, test sets), on its test sets plus ``datasets``:
    dataset names (a standard test set, a rotated or mirrored variant, a file under the datasets
    folder) or ``train`` / ``val`` for the run's own training and validation orbits. A replicated
    run's replicates are evaluated one by one, so what only training refuses with replicates (a
    torchdiffeq solver, say) may be set here."""
    replicates = config.get("replicates", 1)
    cfg = TwoBodyConfig.from_dict({**config, "replicates": 1})
    named = {"train": cfg.train_dataset, "val": val_name(cfg)}
    if "val" in datasets and named["val"] is None:
        raise ConfigError("--datasets val: this run validated on a share of its training orbits (val_fraction > 0), "
                          "not on a validation dataset")
    extra = [named.get(d) or d for d in datasets]
    cfg = cfg.with_(test_datasets=list(dict.fromkeys([*cfg.test_datasets, *extra])))
    if isinstance(replicates, int) and replicates > 1:
        return evaluate_replicates(folder, cfg, replicates, artifact_dir)
    torch.manual_seed(cfg.seed)
    field = VectorField(cfg).to(device=pick_device(cfg.device), dtype=getattr(torch, cfg.dtype))
    load_evaluated(folder, field)  # the best-on-validation weights
    return final_evaluation(field, cfg, TrainingData.load(cfg), artifact_dir)
