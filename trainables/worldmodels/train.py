"""The world-model family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Each step draws ``batch_size`` windows (a training sequence and a start), rolls the model out
open loop over the current horizon from the true start state under the true actions, and
minimises the mean squared normalised state error (horizon 1: single-step matching). Every
``report_every`` steps: ``train_loss``, ``val_loss`` (the same over every validation window at
the full horizon), ``horizon_now``, ``lr``, ``steps_per_s``, ``best_val_loss``, ``best_step``,
``stopped_early``, with a checkpoint (model, optimiser, step, RNG, the best model so far).
Training ends after ``steps`` steps or ``patience`` reports without a lower ``val_loss``; the
best-on-validation model is then evaluated and the last report adds the test metrics
(:mod:`.metrics`). ``lr_schedule: cosine`` decays the learning rate to ``min_lr``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.lr import scheduled_lr
from trainables.common.metric_names import under_dataset
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter

from .config import WorldConfig, dataset_folder
from .data import Sequences, load
from .envs import ENVS
from .metrics import evaluate
from .models import WorldModel, build



def run(config: Mapping[str, Any] | WorldConfig, reporter: Reporter) -> dict[str, Any]:
    """Train one world model; returns the last report's metrics."""
    cfg = WorldConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    env = ENVS[cfg.env]
    folder = dataset_folder(cfg)
    train, val, test = (load(folder, split, env) for split in ("train", "val", "test"))
    model = _model(cfg, len(train.param_names))
    model.set_statistics(torch.as_tensor(train.states, dtype=torch.float32), torch.as_tensor(train.params,
                         dtype=torch.float32), train.dt)
    model.to(device)
    tensors = {name: _tensors(seqs, device) for name, seqs in (("train", train), ("val", val))}
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"model": model, "optimizer": optimizer, "rng": rng}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), state)
    best = BestModel.from_state(cfg.patience, extras.get("best"))
    reporter.tags({"dataset": folder.name, "dataset_sha256": train.content_hash}
                  | ({} if model.continuous else {"dt_generalisation": "not applicable (discrete-time model)"}))
    losses, t0, last = [], time.perf_counter(), {}
    while step < cfg.steps:
        lr = scheduled_lr(cfg.lr_schedule, cfg.lr, cfg.min_lr, step / cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        horizon = _horizon(cfg, step)
        states, actions, params = _windows(tensors["train"], horizon, cfg.batch_size, rng)
        pred = model.rollout(states[:, 0], actions, params, train.dt)
        loss = (((pred - states[:, 1:]) / model.s_std) ** 2).mean()
        if not torch.isfinite(loss):
            raise DivergedError(f"MSE is {loss.item()}", step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        step += 1
        losses.append(loss.item())
        if step % cfg.report_every and step != cfg.steps:
            continue
        last = {"epoch": step * cfg.batch_size / (len(train.states) * train.actions.shape[1]),
                "total_steps": cfg.steps, "lr": lr, "train_loss": float(np.mean(losses)), "horizon_now": horizon,
                "val_loss": _val_loss(model, tensors["val"], cfg.horizon, val.dt),
                "steps_per_s": len(losses) / max(time.perf_counter() - t0, 1e-9)}
        best.observe(last["val_loss"], step, model)
        last.update(best.metrics("val_loss", best.stop and step < cfg.steps))
        final = best.stop or step == cfg.steps
        if final:
            best.restore(model)  # the best-on-validation model is the one evaluated (and checkpointed)
            last.update(evaluate(model, env, test, cfg.eval_horizons, reporter.artifact_dir(), cfg.dt_factors))
        with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
            checkpoint.save_training(ckpt, cfg.steps if final else step, state, cfg.to_dict(),  # final: finished
                                     best=best.state())
            reporter.report(step, last, ckpt)
        losses, t0 = [], time.perf_counter()
        if final:
            break
    return last


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training under ``config`` (the saved config, possibly changed:
    ``eval_horizons``, ``substeps``, ``method``), keyed ``test/<metric>``; each of ``datasets`` adds
    ``test/<name>/<metric>`` (artefacts under ``artifact_dir/<name>/``): ``train`` or ``val`` (the
    run's own splits) or another dataset folder of the same environment (a path, or a name under
    the datasets folder; its test split)."""
    cfg = WorldConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    env = ENVS[cfg.env]
    folder_data = dataset_folder(cfg)
    train = load(folder_data, "train", env)
    model = _model(cfg, len(train.param_names)).to(pick_device(cfg.device))
    load_evaluated(folder, model)  # the best-on-validation weights
    out = evaluate(model, env, load(folder_data, "test", env), cfg.eval_horizons, artifact_dir, cfg.dt_factors)
    for name in datasets:
        if name in ("train", "val", "test"):
            seqs = load(folder_data, name, env)
        else:
            try:  # a dataset folder of the same env (checked)
                other = dataset_folder(dataclasses.replace(cfg, dataset=name))
            except ConfigError as err:
                raise ConfigError(f"--datasets {name}: {str(err).removeprefix('config.dataset: ')}; give train, val, "
                                  "test or a dataset folder of the same environment") from None
            seqs = load(other, "test", env)
        (artifact_dir / name).mkdir(parents=True, exist_ok=True)
        metrics = evaluate(model, env, seqs, cfg.eval_horizons, artifact_dir / name, cfg.dt_factors)
        out.update(under_dataset(metrics, name))
    return out


def _model(cfg: WorldConfig, n_params: int) -> WorldModel:
    """The world model of ``cfg`` for an environment with ``n_params`` varying parameters."""
    env = ENVS[cfg.env]
    return build(cfg.model, env.dim, env.n_actions, n_params, cfg.width, cfg.depth, cfg.activation, cfg.method,
                 cfg.substeps, cfg.separable)


def _tensors(seqs: Sequences, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.as_tensor(seqs.states, dtype=torch.float32, device=device),
            torch.as_tensor(seqs.actions, dtype=torch.long, device=device),
            torch.as_tensor(seqs.params, dtype=torch.float32, device=device))


def _horizon(cfg: WorldConfig, step: int) -> int:
    """The training horizon at ``step``: fixed, or (curriculum) growing 1 -> horizon over half the steps."""
    if not cfg.curriculum:
        return cfg.horizon
    return 1 + int((cfg.horizon - 1) * min(1.0, step / max(1, cfg.steps // 2)))


def _windows(data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], horizon: int, batch: int,
             rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random windows: states ``(B, horizon + 1, d)``, actions ``(B, horizon)``, params ``(B, k)``."""
    states, actions, params = data
    n, steps = actions.shape
    seq = torch.randint(0, n, (batch,), generator=rng).to(states.device)
    start = torch.randint(0, steps - horizon + 1, (batch,), generator=rng).to(states.device)
    offsets = torch.arange(horizon + 1, device=states.device)
    idx = start[:, None] + offsets
    return states[seq[:, None], idx], actions[seq[:, None], idx[:, :-1]], params[seq]


@torch.no_grad()
def _val_loss(model: WorldModel, data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], horizon: int,
              dt: float) -> float:
    states, actions, params = data
    starts = range(0, actions.shape[1] - horizon + 1, horizon)
    if not len(starts):
        return math.nan
    model.eval()
    errs = [(((model.rollout(states[:, s], actions[:, s:s + horizon], params, dt) - states[:, s + 1:s + horizon + 1])
              / model.s_std) ** 2).mean() for s in starts]
    model.train()
    return float(torch.stack(errs).mean())
