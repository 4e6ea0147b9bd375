"""The latent ODE family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Each step draws ``batch_size`` training trajectories' observation sets and takes one Adam step
on ``nll + kl_weight_now * kl`` (the ``gru`` baseline: ``nll``) of reconstructing every
observation (context and forecast) from the context observations (:mod:`.metrics`). Every
``report_every`` steps: ``train_loss``, ``nll``, ``kl``, ``kl_weight_now``, ``nfe_per_step``
(field evaluations per training step), ``val_interp_mse``, ``val_extrap_mse`` (the sweep
metric), ``val_elbo``, ``lr``, ``steps_per_s``, ``best_*``, with a checkpoint; at the end the
best-on-validation model is evaluated on the test split (:func:`final_metrics`, which
:func:`evaluate_checkpoint`, the ``dynsweep evaluate`` hook, shares).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.metric_names import under_dataset
from trainables.common.lr import scheduled_lr
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter
from trainables.pendulum.dataset import open_for_training
from trainables.twobody.dataset import load_named

from .config import LatentODEConfig
from .metrics import evaluate, loss_terms, to_batch, validation
from .model import ODE_MODELS, GRUBaseline, LatentODE, Normalised, StateODE
from .observations import ObservationSet, draw
from .sources import Trajectories, channels, linear, observed, pendulum, twobody


def run(config: Mapping[str, Any] | LatentODEConfig, reporter: Reporter) -> dict[str, Any]:
    """Train one latent ODE (or GRU baseline); returns the last report's metrics."""
    cfg = LatentODEConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    sets, source_hash = observation_sets(cfg)
    model = build(cfg, *normalisation(sets["train"], cfg.system)).to(device)
    batches = {name: to_batch(obs, *model.normalisation(), device) for name, obs in sets.items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"model": model, "optimizer": optimizer, "rng": rng}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), state)
    best = BestModel.from_state(cfg.patience, extras.get("best"))
    reporter.tags({"dataset_sha256": source_hash, "observations_sha256": sets["train"].content_hash})
    ode, latent, n_train = cfg.model in ODE_MODELS, cfg.model == "latent_ode", batches["train"].t_obs.shape[0]
    rows, t0, last = [], time.perf_counter(), {}
    while step < cfg.steps:
        lr = scheduled_lr(cfg.lr_schedule, cfg.lr, cfg.min_lr, step / cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        weight = cfg.kl_weight * (min(1.0, step / cfg.kl_anneal_steps) if cfg.kl_anneal_steps else 1.0)
        index = torch.randint(0, n_train, (cfg.batch_size,), generator=rng).to(device)
        nfe0 = model.field.nfe if ode else 0
        nll, kl = loss_terms(model, batches["train"].rows(index))
        loss = nll + weight * kl if kl is not None else nll
        if not torch.isfinite(loss):
            raise DivergedError(f"loss is {loss.item()}", step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        step += 1
        rows.append({"train_loss": loss.item(), "nll": nll.item(),
                     **({"kl": kl.item(), "kl_weight_now": weight} if kl is not None else {}),
                     **({"nfe_per_step": float(model.field.nfe - nfe0)} if ode else {})})
        if step % cfg.report_every and step != cfg.steps:
            continue
        last = {"epoch": step * cfg.batch_size / n_train, "total_steps": cfg.steps, "lr": lr,
                **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]},
                **validation(model, batches["val"], latent),
                "steps_per_s": len(rows) / max(time.perf_counter() - t0, 1e-9)}
        best.observe(last["val_extrap_mse"], step, model)
        last.update(best.metrics("val_extrap_mse", best.stop and step < cfg.steps))
        final = best.stop or step == cfg.steps
        if final:
            best.restore(model)
            last.update(final_metrics(model, cfg, sets["test"], reporter.artifact_dir()))
        with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
            checkpoint.save_training(ckpt, cfg.steps if final else step, state, cfg.to_dict(), best=best.state())
            reporter.report(step, last, ckpt)
        rows, t0 = [], time.perf_counter()
        if final:
            break
    return last


def build(cfg: LatentODEConfig, mean: np.ndarray, std: np.ndarray) -> Normalised:
    """The model of ``cfg`` for observations normalised by ``mean``, ``std`` ``(D,)`` (kept in the model)."""
    log_std = float(np.log(cfg.obs_std))
    if cfg.model == "state_ode":
        return StateODE(mean, std, cfg.width, cfg.depth, cfg.activation, cfg.method, cfg.substep, log_std, cfg.learn_std)
    if cfg.model == "gru":
        return GRUBaseline(mean, std, cfg.enc_hidden, cfg.encoder, cfg.dec_width, cfg.time_scale, cfg.dt, log_std,
                           cfg.learn_std)
    return LatentODE(mean, std, cfg.latent, cfg.enc_hidden, cfg.encoder, cfg.width, cfg.depth, cfg.activation,
                     cfg.dec_width, cfg.method, cfg.substep, cfg.time_scale, log_std, cfg.learn_std)


def final_metrics(model: Normalised, cfg: LatentODEConfig, obs: ObservationSet,
                  artifact_dir: Path | None) -> dict[str, float]:
    """The ``test/...`` metrics of ``model`` on the observation set ``obs`` (normalised as in training;
    the artefact written to ``artifact_dir`` unless None): the end of training and ``dynsweep
    evaluate`` both call it."""
    mean, std = model.normalisation()
    batch = to_batch(obs, mean, std, next(model.parameters()).device)
    return evaluate(model, batch, cfg.model == "latent_ode", mean, std, obs, cfg.context, artifact_dir,
                    orbits=cfg.system == "twobody")


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the best model of checkpoint ``folder``
    evaluated as at the end of training under ``config`` (the saved config, possibly changed:
    ``noise``, ``n_obs``, ``obs_seed``, ``forecast``, ...), keyed ``test/<metric>``. Each of
    ``datasets`` adds ``test/<name>/<metric>``, observed as the test split is: for ``twobody`` another
    planar two-body dataset by name (all its orbits; e.g. ``complex_TBP_planar_rotated_10_test``), for
    ``pendulum`` another pendulum dataset (a file or a name; its test simulations)."""
    cfg = LatentODEConfig.from_dict(config)
    if datasets and cfg.system == "linear":
        raise ConfigError(f"--datasets {' '.join(datasets)}: the linear system has no datasets; change its test "
                          "with --set obs_seed=..., noise=..., n_obs=...")
    torch.manual_seed(cfg.seed)
    width = len(channels(cfg.system, cfg.observed))
    model = build(cfg, np.zeros(width), np.ones(width)).to(pick_device(cfg.device))
    load_evaluated(folder, model)  # the weights and the training's normalisation, whatever the config changed
    out = final_metrics(model, cfg, observation_set(cfg, trajectories(cfg, "test"), "test"), artifact_dir)
    for name in datasets:
        if cfg.system == "twobody":
            traj = twobody(load_named(name, cfg.datasets_root), _samples(cfg), cfg.dt)
        else:
            traj = pendulum(open_for_training(name, cfg.pendulum_spec(), cfg.datasets_root), "test")
        out.update(under_dataset(final_metrics(model, cfg, observation_set(cfg, observed(traj, cfg.observed), "test"),
                                               None), name))
    return out


def normalisation(train: ObservationSet, system: str) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` ``(D,)`` of the training windows (noise free, every grid point): per channel;
    for ``twobody`` zero mean and one scale for the positions, one for the velocities (their root
    mean square), so errors weigh alike in every direction of the plane."""
    x = train.x_grid.reshape(-1, train.x_grid.shape[-1])
    if system != "twobody":
        return x.mean(0), x.std(0) + 1e-8
    scales = [np.sqrt(np.mean(x[:, k:k + 2] ** 2)) for k in range(0, x.shape[1], 2)]
    return np.zeros(x.shape[1]), np.repeat(scales, 2) + 1e-8


def _samples(cfg: LatentODEConfig) -> int:
    """Grid points of a linear or two-body trajectory: ``span`` at ``dt``."""
    return int(round(cfg.span / cfg.dt)) + 1


def trajectories(cfg: LatentODEConfig, split: str) -> Trajectories:
    """The noise-free trajectories of ``split`` (the observed channels)."""
    if cfg.system == "linear":
        n = cfg.linear_trajs if split == "train" else max(8, cfg.linear_trajs // 4)
        traj = linear(n, _samples(cfg), cfg.dt, [cfg.data_seed, {"train": 0, "val": 1, "test": 2}[split]])
    elif cfg.system == "twobody":
        traj = twobody(load_named(cfg.twobody_names()[split], cfg.datasets_root), _samples(cfg), cfg.dt)
    else:
        traj = pendulum(open_for_training(cfg.dataset, cfg.pendulum_spec(), cfg.datasets_root), split)
    return observed(traj, cfg.observed)


def observation_set(cfg: LatentODEConfig, traj: Trajectories, split: str) -> ObservationSet:
    """The observations of ``split`` drawn from ``traj`` (validation and test: half the windows)."""
    windows = cfg.windows if split == "train" else max(1, cfg.windows // 2)
    return draw(traj, split, cfg.context, cfg.forecast, cfg.n_obs, cfg.n_forecast_obs, cfg.noise, cfg.obs_seed,
                windows)


def observation_sets(cfg: LatentODEConfig) -> tuple[dict[str, ObservationSet], str]:
    """The train / val / test observation sets of ``cfg`` and the source data's content hash."""
    sets, hashes = {}, {}
    for split in ("train", "val", "test"):
        traj = trajectories(cfg, split)
        hashes[split] = traj.content_hash
        sets[split] = observation_set(cfg, traj, split)
    return sets, hashes["train"]
