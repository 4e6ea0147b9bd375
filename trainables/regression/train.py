"""The regression family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Every ``report_every`` steps (and at the last) it reports ``train_loss`` (the objective, mean
since the last report) and its terms ``recon, l1, l2, grad_penalty``; on the validation rows
``val_loss`` (the robust term, normalised units, drives ReduceLROnPlateau; with a
``loss_schedule``, a curriculum of losses by step, the schedule's last loss, and ``loss_phase``
the index of the loss trained with), ``val_rmse``,
``val_mae`` and ``val_rmse_<output>`` (physical units); with clean-truth columns,
``clean_rmse_val`` and ``clean_rmse_all`` (prediction vs the clean truth on the validation rows
and on all rows: how well the underlying function was recovered); with a checkpoint holding the
model (normalisation buffers included), optimiser, scheduler, step, RNG state and the best
model so far. Training ends after ``steps`` steps or ``patience`` reports without a lower
``val_loss`` (0: never); the last report's validation metrics and predictions are those of the
best-on-validation model (``best_step`` says where it came from). ReduceLROnPlateau lowers the
learning rate down to ``min_lr``.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import DivergedError
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .config import RegressionConfig
from .data import Table, load_table, resolve, split_rows
from .evaluate import write_predictions
from .losses import LOSSES, objective
from .model import RegressionMLP



def run(config: Mapping[str, Any] | RegressionConfig, reporter: Reporter) -> dict[str, float]:
    """Train one regression MLP; returns the last report's metrics."""
    cfg = RegressionConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    table = load_table(resolve(cfg.dataset, cfg.demo(), cfg.datasets_root), cfg.inputs, cfg.outputs, cfg.clean())
    train_rows, val_rows = split_rows(len(table.x), cfg.val_fraction, cfg.seed, cfg.validate_on_train)
    model = _model(cfg)
    model.set_normalisation(table.x[train_rows], table.y[train_rows])  # training rows only
    model.to(device)
    xn, yn = _normalised(model, table)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.plateau_factor,
                                                         patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    state = {"model": model, "optimizer": optimizer, "plateau": plateau}
    step, extra = checkpoint.restore_training(reporter.restore_dir(), state)
    best = BestModel.from_state(cfg.patience, extra.get("best"))
    reporter.tags({"dataset_sha256": table.content_hash, "rows_dropped": str(table.dropped)})
    weights = list(model.parameters())
    train_idx = torch.as_tensor(train_rows, device=device)
    window, terms, t0, last = [], [], time.perf_counter(), {}
    while step < cfg.steps:
        idx = _batch(train_idx, step, cfg.batch_size, cfg.seed)
        x = xn[idx].requires_grad_(cfg.w_grad > 0)
        loss, parts = objective(LOSSES[cfg.loss_at(step)], cfg.scale, model(x), yn[idx], x, weights, cfg.w_recon,
                                cfg.w_l1, cfg.w_l2, cfg.w_grad)
        if not torch.isfinite(loss):
            raise DivergedError(f"loss is {loss.item()}", step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window.append(loss.item())
        terms.append(parts)
        if step % cfg.report_every and step != cfg.steps:
            continue
        metrics = _evaluate(model, xn, yn, table, val_rows, cfg)
        plateau.step(metrics["val_loss"])
        best.observe(metrics["val_loss"], step, model)
        final = best.stop or step == cfg.steps
        if final:  # the best-on-validation model is the one evaluated, written and checkpointed
            best.restore(model)
            metrics = _evaluate(model, xn, yn, table, val_rows, cfg)
        elapsed = max(time.perf_counter() - t0, 1e-9)
        last = {"epoch": step * min(cfg.batch_size, len(train_rows)) / len(train_rows), "total_steps": cfg.steps,
                "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(window)),
                **{k: float(np.mean([t[k] for t in terms])) for k in terms[0]}, **metrics,
                **best.metrics("val_loss", best.stop and step < cfg.steps),
                **({"loss_phase": float(sum(1 for s, _ in cfg.loss_schedule if s < step) - 1)}
                   if cfg.loss_schedule else {}),
                "steps_per_s": len(window) / elapsed,
                "rows_per_s": len(window) * min(cfg.batch_size, len(train_rows)) / elapsed}
        if final:
            write_predictions(reporter.artifact_dir(), model, xn, table, train_rows, val_rows, cfg)
        with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
            checkpoint.save_training(ckpt, cfg.steps if final else step, state, cfg.to_dict(),  # final: finished
                                     best=best.state())
            reporter.report(step, last, ckpt)
        window, terms, t0 = [], [], time.perf_counter()
        if final:
            break
    return last


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training (the validation metrics, predictions and exported model;
    the same names as the run's last report); each of ``datasets`` adds ``test/<name>/loss``,
    ``rmse``, ``mae``, ``rmse_<output>`` (and ``clean_rmse`` with clean-truth columns): ``train`` (the run's
    training rows) or another table with the same columns (a path, or a name under the datasets
    folder; every row)."""
    cfg = RegressionConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    table = load_table(resolve(cfg.dataset, cfg.demo(), cfg.datasets_root), cfg.inputs, cfg.outputs, cfg.clean())
    train_rows, val_rows = split_rows(len(table.x), cfg.val_fraction, cfg.seed, cfg.validate_on_train)
    model = _model(cfg).to(pick_device(cfg.device))
    load_evaluated(folder, model)  # the best-on-validation weights
    xn, yn = _normalised(model, table)
    out = _evaluate(model, xn, yn, table, val_rows, cfg)
    write_predictions(artifact_dir, model, xn, table, train_rows, val_rows, cfg)
    for name in datasets:
        other, rows = (table, train_rows) if name == "train" else (
            load_table(resolve(name, cfg.demo(), cfg.datasets_root), cfg.inputs, cfg.outputs, cfg.clean()), None)
        oxn, oyn = _normalised(model, other)
        rows = np.arange(len(other.x)) if rows is None else rows
        metrics = _evaluate(model, oxn, oyn, other, rows, cfg)
        out.update({f"test/{name}/{k.removeprefix('val_').replace('clean_rmse_val', 'clean_rmse')}": v
                    for k, v in metrics.items() if k != "clean_rmse_all"})
    return out


def _model(cfg: RegressionConfig) -> RegressionMLP:
    return RegressionMLP(len(cfg.inputs), len(cfg.outputs), cfg.hidden_widths(), cfg.activation, cfg.model, cfg.skip)


def _normalised(model: RegressionMLP, table: Table) -> tuple[torch.Tensor, torch.Tensor]:
    """The table's inputs and outputs, normalised by the model's (training-row) statistics."""
    device = model.x_mean.device
    x = torch.as_tensor(table.x, dtype=torch.float32, device=device)
    y = torch.as_tensor(table.y, dtype=torch.float32, device=device)
    xn, yn = model.normalise(x, y)
    assert yn is not None
    return xn, yn


@torch.no_grad()
def _evaluate(model: RegressionMLP, xn: torch.Tensor, yn: torch.Tensor, table: Table, val_rows: np.ndarray,
              cfg: RegressionConfig) -> dict[str, float]:
    model.eval()
    pred_n = torch.cat([model(chunk) for chunk in xn.split(65_536)])
    model.train()
    val = torch.as_tensor(val_rows, device=xn.device)
    out = {"val_loss": float(LOSSES[cfg.val_loss_name()](pred_n[val] - yn[val], cfg.scale).mean())}
    pred = (pred_n * model.y_std + model.y_mean).double().cpu().numpy()  # physical units
    err = pred[val_rows] - table.y[val_rows]
    out["val_rmse"], out["val_mae"] = float(np.sqrt((err ** 2).mean())), float(np.abs(err).mean())
    out.update({f"val_rmse_{c}": float(np.sqrt((err[:, j] ** 2).mean())) for j, c in enumerate(cfg.outputs)})
    if table.clean is not None:
        out["clean_rmse_val"] = float(np.sqrt(((pred[val_rows] - table.clean[val_rows]) ** 2).mean()))
        out["clean_rmse_all"] = float(np.sqrt(((pred - table.clean) ** 2).mean()))
    return out


def _batch(train_idx: torch.Tensor, step: int, batch_size: int, seed: int) -> torch.Tensor:
    """The training rows of optimiser step ``step``: passes over the training rows, each in the
    order of a permutation seeded by (seed, pass); a function of the step alone, so a resumed run
    draws exactly the batches an uninterrupted one would."""
    n_pass, k = divmod(step, math.ceil(len(train_idx) / batch_size))
    order = _pass_order(len(train_idx), seed, n_pass)
    return train_idx[order[k * batch_size:(k + 1) * batch_size].to(train_idx.device)]


@functools.lru_cache(maxsize=2)
def _pass_order(n: int, seed: int, n_pass: int) -> torch.Tensor:
    """The row order ``(n,)`` of pass ``n_pass`` (drawn once per pass)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + n_pass))
