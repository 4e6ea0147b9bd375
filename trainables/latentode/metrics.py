"""Losses and metrics of the latent ODE family.

Values are normalised per channel by the training trajectories' mean and standard deviation;
``*_mse`` metrics are in those units (mean over channels), ``test/*_rmse_<channel>`` in the
channel's physical unit (root mean square over trajectories and points). Predictions come from the
encoder's mean ``z0`` given the context observations only.

- ``nll``: the Gaussian negative log-likelihood per observed value (nats), context and forecast;
- ``kl``: ``KL(q(z0) || N(0, I))`` per observed value (closed form), weighted by ``kl_weight``
  (reached linearly over ``kl_anneal_steps``); the loss is ``nll + weight * kl``;
- ``val_elbo`` / ``test/elbo``: ``-(nll + kl)`` per observed value (``z0`` sampled once);
- ``*_interp_mse``: the held-out grid points inside the context window;
- ``*_extrap_mse`` (the sweep metric on validation): every grid point of the forecast window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.common.artifacts import write_artifact

from .artifacts import SHOWN, TRAJECTORIES
from .model import kl_normal
from .observations import ObservationSet


@dataclass
class Batch:
    """Tensors of (part of) an observation set, normalised; see :class:`.observations.ObservationSet`."""

    t_obs: torch.Tensor
    x_obs: torch.Tensor
    mask: torch.Tensor
    t_interp: torch.Tensor
    x_interp: torch.Tensor
    t_forecast: torch.Tensor
    x_forecast: torch.Tensor

    def rows(self, index: torch.Tensor) -> "Batch":
        return Batch(self.t_obs[index], self.x_obs[index], self.mask, self.t_interp[index], self.x_interp[index],
                     self.t_forecast[index], self.x_forecast[index])


def to_batch(obs: ObservationSet, mean: np.ndarray, std: np.ndarray, device: torch.device) -> Batch:
    def f(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    n = obs.x_obs.shape[0]
    return Batch(f(obs.t_obs), f((obs.x_obs - mean) / std), torch.as_tensor(obs.in_context, device=device),
                 f(obs.t_interp), f((obs.x_interp - mean) / std), f(np.tile(obs.t_forecast, (n, 1))),
                 f((obs.x_forecast - mean) / std))


def gaussian_nll(pred: torch.Tensor, x: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per value of ``x`` under ``N(pred, exp(log_std)^2)`` (nats)."""
    return (0.5 * ((x - pred) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)).mean()


def loss_terms(model: torch.nn.Module, batch: Batch, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(nll, kl per observed value or None)`` of a batch (reconstructing every observation)."""
    pred, mu, logvar = model(batch.t_obs, batch.x_obs, batch.mask, batch.t_obs, sample=sample)
    nll = gaussian_nll(pred, batch.x_obs, model.log_std)
    kl = None if mu is None else kl_normal(mu, logvar).mean() / batch.x_obs[0].numel()
    return nll, kl


@torch.no_grad()
def errors(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions at the interpolation and forecast points ``(B, I, D)``, ``(B, F, D)`` (mean ``z0``)."""
    query = torch.cat([batch.t_interp, batch.t_forecast], 1)
    pred, _, _ = model(batch.t_obs, batch.x_obs, batch.mask, query, sample=False)
    return pred[:, :batch.t_interp.shape[1]], pred[:, batch.t_interp.shape[1]:]


def validation(model: torch.nn.Module, batch: Batch, latent: bool) -> dict[str, float]:
    """``val_interp_mse``, ``val_extrap_mse`` and (latent ODE) ``val_elbo``."""
    model.eval()
    interp, extrap = errors(model, batch)
    out = {"val_interp_mse": float(((interp - batch.x_interp) ** 2).mean()),
           "val_extrap_mse": float(((extrap - batch.x_forecast) ** 2).mean())}
    if latent:
        with torch.no_grad():
            nll, kl = loss_terms(model, batch)
        out["val_elbo"] = float(-(nll + kl))  # type: ignore[operator]
    model.train()
    return out


def evaluate(model: torch.nn.Module, batch: Batch, latent: bool, mean: np.ndarray, std: np.ndarray,
             obs: ObservationSet, context: float, artifact_dir: Path) -> dict[str, float]:
    """The ``test/...`` metrics; writes the trajectories artefact."""
    val = validation(model, batch, latent)
    model.eval()
    interp, extrap = errors(model, batch)
    scale = torch.as_tensor(std, dtype=torch.float32, device=interp.device)
    out = {"test/interp_mse": val["val_interp_mse"], "test/extrap_mse": val["val_extrap_mse"]}
    for c, name in enumerate(obs.channels):  # per channel, in its physical unit
        out[f"test/interp_rmse_{name}"] = float(((interp - batch.x_interp)[..., c] * scale[c]).pow(2).mean().sqrt())
        out[f"test/extrap_rmse_{name}"] = float(((extrap - batch.x_forecast)[..., c] * scale[c]).pow(2).mean().sqrt())
    if latent:
        out["test/elbo"] = val["val_elbo"]
    _write(model, batch, obs, mean, std, context, artifact_dir)
    model.train()
    return out


@torch.no_grad()
def _write(model: torch.nn.Module, batch: Batch, obs: ObservationSet, mean: np.ndarray, std: np.ndarray,
           context: float, folder: Path) -> None:
    """The first :data:`SHOWN` test trajectories: observed, true and predicted values by channel."""
    n = min(SHOWN, batch.t_obs.shape[0])
    part = batch.rows(torch.arange(n, device=batch.t_obs.device))
    grid = torch.as_tensor(obs.t_grid, dtype=torch.float32, device=batch.t_obs.device)
    pred, _, _ = model(part.t_obs, part.x_obs, part.mask, grid.expand(n, -1), sample=False)
    pred_phys = pred.cpu().numpy() * std + mean                                     # (n, W, D)
    cols: dict[str, list] = {k: [] for k in ("seq", "t", "channel", "unit", "kind", "value")}
    for i in range(n):
        for c, (name, unit) in enumerate(zip(obs.channels, obs.units)):
            for kind, ts, vs in (("observed", obs.t_obs[i], obs.x_obs[i, :, c]), ("true", obs.t_grid, obs.x_grid[i, :, c]),
                                 ("predicted", obs.t_grid, pred_phys[i, :, c])):
                cols["seq"] += [i] * len(ts)
                cols["t"] += [float(v) for v in ts]
                cols["channel"] += [name] * len(ts)
                cols["unit"] += [unit] * len(ts)
                cols["kind"] += [kind] * len(ts)
                cols["value"] += [float(v) for v in vs]
    write_artifact(folder, TRAJECTORIES, {**{k: np.asarray(v) for k, v in cols.items()},
                                          "context_end": np.full(len(cols["seq"]), context)})
