"""The double-pendulum family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Reports every ``report_every`` steps (and at the last): ``step``, ``epoch``, ``total_steps``,
``lr``, ``train_loss`` (mean since the last report), ``val_loss``, ``best_val_loss``,
``best_step``, ``steps_per_s``, ``windows_per_s``, ``stopped_early``, with a checkpoint holding
the model (normalisation included), optimiser, LR scheduler, the best model so far and the
early-stopping state. Training ends after ``steps`` steps or ``patience`` reports without a
better validation loss; the best-on-validation model is then evaluated (:mod:`.metrics`) and
the last report adds the ``test/`` metrics.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.metric_names import under_dataset
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .config import PendulumConfig
from .dataset import PARAM_COLUMNS, PendulumDataset, open_for_training
from .metrics import evaluate
from .model import SequenceModel
from .windows import WindowStream, group_sims, read_chunk, sample_windows, split_sims



def run(config: Mapping[str, Any] | PendulumConfig, reporter: Reporter) -> dict[str, float]:
    """Train one sequence model on double-pendulum simulations; returns the last report's metrics."""
    cfg = PendulumConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    ds = open_for_training(cfg.dataset, cfg.data_spec(), cfg.datasets_root)
    lengths = dict(ds.sim_lengths().iter_rows())
    train_sims, val_sims, test_sims = split_sims(np.array(sorted(lengths)), cfg.val_fraction, cfg.test_fraction,
                                                 cfg.seed)
    use_params = _params_vary(ds)
    stream = WindowStream(ds, train_sims, lengths, cfg.window, cfg.predict_steps, cfg.target, use_params,
                          cfg.stream_rows, cfg.seed)
    model = _model(cfg, use_params).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.plateau_factor,
                                                         patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    parts = {"model": model, "optimizer": optimizer, "plateau": plateau}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), parts)
    best = BestModel.from_state(cfg.patience, extras.get("best", extras if "best_model" in extras else None))
    reporter.tags({"dataset_sha256": ds.content_hash})
    if step == 0:
        model.set_normaliser(stream.fit_normaliser())  # training simulations only
    val_x, val_y = _validation_windows(ds, val_sims, lengths, cfg, use_params, device)
    if extras.get("stream") is not None:
        stream.restore(extras["stream"])  # the batches an uninterrupted run would draw next
    batches = stream.batches(cfg.batch_size)
    losses, windows, t0 = [], 0, time.perf_counter()
    last: dict[str, float] = {}
    while step < cfg.steps:
        x, y = (t.to(device) for t in next(batches))
        loss = torch.nn.functional.mse_loss(model(x), model.normalise_targets(y))
        if not torch.isfinite(loss):
            raise DivergedError(f"MSE is {loss.item()}", step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step, windows = step + 1, windows + len(x)
        losses.append(loss.item())
        if step % cfg.report_every and step != cfg.steps:
            continue
        val_loss = _val_loss(model, val_x, val_y)
        plateau.step(val_loss)
        best.observe(val_loss, step, model)
        stop = best.stop
        elapsed = max(time.perf_counter() - t0, 1e-9)
        last = {"epoch": step * cfg.batch_size / stream.windows_per_epoch, "total_steps": cfg.steps,
                "lr": optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                **best.metrics("val_loss", stop), "steps_per_s": len(losses) / elapsed, "windows_per_s": windows / elapsed}
        if stop or step == cfg.steps:
            best.restore(model)  # the best-on-validation model is the one evaluated
            last.update(evaluate(model, ds, test_sims, cfg, use_params, reporter.artifact_dir()))
        with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
            checkpoint.save_training(ckpt, cfg.steps if stop else step, parts, cfg.to_dict(),  # stopped: finished
                                     best=best.state(), stream=stream.state())
            reporter.report(step, last, ckpt)
        losses, windows, t0 = [], 0, time.perf_counter()
        if stop:
            break
    return last


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training under ``config`` (the saved config, possibly changed:
    ``horizons``, ``eval_sims``, ``vpt_threshold``, ...), keyed ``test/<metric>``; each of ``datasets``
    adds ``test/<name>/<metric>`` (artefacts under ``artifact_dir/<name>/``): ``train``, ``val`` or
    ``test`` (the run's own simulations of that split) or another pendulum dataset (a file, or a
    name under the datasets folder; all its simulations)."""
    cfg = PendulumConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    ds = open_for_training(cfg.dataset, cfg.data_spec(), cfg.datasets_root)
    lengths = dict(ds.sim_lengths().iter_rows())
    splits = dict(zip(("train", "val", "test"), split_sims(np.array(sorted(lengths)), cfg.val_fraction,
                                                           cfg.test_fraction, cfg.seed)))
    use_params = _params_vary(ds)
    model = _model(cfg, use_params).to(pick_device(cfg.device))
    load_evaluated(folder, model)  # the best-on-validation weights
    out = evaluate(model, ds, splits["test"], cfg, use_params, artifact_dir)
    for name in datasets:
        if name in splits:
            other, sims = ds, splits[name]
        else:
            other = open_for_training(name, cfg.data_spec(), cfg.datasets_root)
            sims = np.array(sorted(dict(other.sim_lengths().iter_rows())))
        if _params_vary(other) != use_params:
            raise ConfigError(f"--datasets {name}: its pendulum parameters {'vary' if not use_params else 'are fixed'}, "
                              "the model's inputs say otherwise; evaluate on a dataset like the training one")
        (artifact_dir / name).mkdir(parents=True, exist_ok=True)
        metrics = evaluate(model, other, sims, cfg, use_params, artifact_dir / name)
        out.update(under_dataset(metrics, name))
    return out


def _model(cfg: PendulumConfig, use_params: bool) -> SequenceModel:
    """The sequence model of ``cfg``; its inputs include the four pendulum parameters when they vary."""
    return SequenceModel(cfg.rnn, cfg.hidden, cfg.layers, cfg.dropout, 6 + 4 * use_params, cfg.target,
                         cfg.predict_steps)


def _params_vary(ds: PendulumDataset) -> bool:
    """Whether l1, l2, m1 or m2 differ between rows (then they are model inputs)."""
    counts = ds.collect(ds.scan().select([pl.col(c).n_unique() for c in PARAM_COLUMNS]))
    return bool(max(counts.row(0)) > 1)


def _validation_windows(ds: PendulumDataset, sims: np.ndarray, lengths: dict[int, int], cfg: PendulumConfig,
                        use_params: bool, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Up to ``val_windows`` windows of the validation simulations (read at most ``stream_rows`` rows)."""
    if len(sims) == 0:
        return None, None
    chunk = read_chunk(ds, group_sims(sims, lengths, cfg.stream_rows)[0], cfg.window, cfg.predict_steps,
                       cfg.target, use_params)
    if len(chunk.starts) == 0:
        return None, None
    x, y, _ = sample_windows(chunk, cfg.val_windows, cfg.window, cfg.predict_steps, cfg.seed)
    return x.to(device), y.to(device)


@torch.no_grad()
def _val_loss(model: SequenceModel, x: torch.Tensor | None, y: torch.Tensor | None) -> float:
    if x is None or y is None:
        return math.nan
    model.eval()
    loss = sum(float(torch.nn.functional.mse_loss(model(xb), model.normalise_targets(yb), reduction="sum"))
               for xb, yb in zip(x.split(4096), y.split(4096))) / y.numel()
    model.train()
    return loss
