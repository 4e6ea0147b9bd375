"""Losses and metrics of the latent ODE family.

Values are normalised per channel by the training trajectories' mean and standard deviation;
``*_mse`` metrics are in those units (mean over channels), ``test/*_rmse_<channel>`` in the
channel's physical unit (root mean square over trajectories and points). Predictions come from the
encoder's mean ``z0`` given the context observations only.

- ``nll``: the Gaussian negative log-likelihood per observed value (nats), context and forecast;
- ``kl``: ``KL(q(z0) || N(0, I))`` per observed value (closed form), weighted by ``kl_weight``
  (reached linearly over ``kl_anneal_steps``); the loss is ``nll + weight * kl``;
- ``val_elbo`` / ``test/elbo``: ``-(nll + kl)`` per observed value (``z0`` sampled once, from a fixed seed);
- ``*_interp_mse``: the held-out grid points inside the context window;
- ``*_extrap_mse`` (the sweep metric on validation): every grid point of the forecast window;
- two-body only, on the decoded trajectory over the window's grid (canonical units): its specific
  energy ``E = v^2/2 - 1/r`` and angular momentum ``h = x vy - y vx``, each relative to the true
  orbit's ``|E|`` (``|h|``), averaged over the test windows: ``test/energy_drift`` (``angmom_``), the
  largest change from the window's start, ``max_t |E(t) - E(0)|``, which a true orbit keeps at 0;
  ``test/energy_error`` (``angmom_``), the largest distance from the true value, ``max_t |E(t) -
  E_true|`` (a model that conserves the wrong energy, or predicts a standing point, has a small
  drift but not a small error). With ``observed: positions`` velocities are the positions'
  second-order differences on the grid, the truth's too: its own values are then not exactly
  constant (about 1e-3 relative at dt = 0.1 TU on low orbits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.common.artifacts import write_artifact
from trainables.twobody.kepler import angular_momentum, specific_energy

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
    return _scores(model, batch, latent)[2]


def _scores(model: torch.nn.Module, batch: Batch, latent: bool) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The predictions at the interpolation and forecast points (see :func:`errors`) and their
    :func:`validation` metrics."""
    model.eval()
    interp, extrap = errors(model, batch)
    out = {"val_interp_mse": float(((interp - batch.x_interp) ** 2).mean()),
           "val_extrap_mse": float(((extrap - batch.x_forecast) ** 2).mean())}
    if latent:  # one draw of z0 from a fixed seed: the same value for the same model, training's draws untouched
        with torch.no_grad(), torch.random.fork_rng(devices=[batch.t_obs.device] if batch.t_obs.is_cuda else []):
            torch.manual_seed(0)
            nll, kl = loss_terms(model, batch)
        out["val_elbo"] = float(-(nll + kl))  # type: ignore[operator]
    model.train()
    return interp, extrap, out


def evaluate(model: torch.nn.Module, batch: Batch, latent: bool, mean: np.ndarray, std: np.ndarray,
             obs: ObservationSet, context: float, artifact_dir: Path | None, orbits: bool = False) -> dict[str, float]:
    """The ``test/...`` metrics (``orbits``: with the two-body drifts); writes the trajectories
    artefact to ``artifact_dir`` unless None."""
    interp, extrap, val = _scores(model, batch, latent)
    model.eval()
    scale = torch.as_tensor(std, dtype=torch.float32, device=interp.device)
    out = {"test/interp_mse": val["val_interp_mse"], "test/extrap_mse": val["val_extrap_mse"]}
    for c, name in enumerate(obs.channels):  # per channel, in its physical unit
        out[f"test/interp_rmse_{name}"] = float(((interp - batch.x_interp)[..., c] * scale[c]).pow(2).mean().sqrt())
        out[f"test/extrap_rmse_{name}"] = float(((extrap - batch.x_forecast)[..., c] * scale[c]).pow(2).mean().sqrt())
    if latent:
        out["test/elbo"] = val["val_elbo"]
    grid_pred = decoded(model, batch, obs.t_grid) * std + mean                          # (n, W, D) physical
    if orbits:
        out.update(orbit_drifts(grid_pred, obs.x_grid, float(obs.t_grid[1] - obs.t_grid[0])))
    if artifact_dir is not None:
        shown = np.unique(np.linspace(0, len(grid_pred) - 1, SHOWN).round().astype(int))
        _write(shown, grid_pred[shown], obs, context, "TU" if orbits else "s", artifact_dir)
    model.train()
    return out


@torch.no_grad()
def decoded(model: torch.nn.Module, batch: Batch, t_grid: np.ndarray) -> np.ndarray:
    """Each trajectory's prediction on the window's grid ``(n, W, D)`` (normalised units), from its
    context observations only."""
    grid = torch.as_tensor(t_grid, dtype=torch.float32, device=batch.t_obs.device)
    pred, _, _ = model(batch.t_obs, batch.x_obs, batch.mask, grid.expand(batch.t_obs.shape[0], -1), sample=False)
    return pred.cpu().numpy()


def orbit_drifts(pred: np.ndarray, true: np.ndarray, dt: float) -> dict[str, float]:
    """``test/{energy,angmom}_{drift,error}`` (see the module docstring) of planar two-body
    trajectories ``pred`` against ``true``, both ``(n, W, 2 or 4)`` ``[x, y(, vx, vy)]`` on a grid of
    spacing ``dt`` TU."""
    out = {}
    for name, p, t in zip(("energy", "angmom"), _conserved(pred, dt), _conserved(true, dt)):
        scale = np.abs(t.mean(1))                                           # (n,) the true orbit's value
        out[f"test/{name}_drift"] = float(np.mean(np.max(np.abs(p - p[:, :1]), 1) / scale))
        out[f"test/{name}_error"] = float(np.mean(np.max(np.abs(p - t.mean(1, keepdims=True)), 1) / scale))
    return out


def _conserved(x: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Specific energy and angular momentum ``(n, W)`` of ``x`` ``(n, W, 2 or 4)`` (canonical units)."""
    pos = x[..., :2]
    vel = x[..., 2:4] if x.shape[-1] >= 4 else np.gradient(pos, dt, axis=1, edge_order=2)
    zero = np.zeros_like(pos[..., :1])
    states = np.concatenate([pos, zero, vel, zero], -1)                                # (n, W, 6)
    return specific_energy(states, mu=1.0), angular_momentum(states)[..., 2]


def _write(seqs: np.ndarray, pred_phys: np.ndarray, obs: ObservationSet, context: float, t_unit: str,
           folder: Path) -> None:
    """Test trajectories ``seqs`` ``(n,)``: observed, true and predicted (``pred_phys`` ``(n, W, D)``, on
    the grid, physical units) values by channel."""
    cols: dict[str, list] = {k: [] for k in ("seq", "t", "channel", "unit", "kind", "value")}
    for k, i in enumerate(seqs):
        for c, (name, unit) in enumerate(zip(obs.channels, obs.units)):
            for kind, ts, vs in (("observed", obs.t_obs[i], obs.x_obs[i, :, c]), ("true", obs.t_grid, obs.x_grid[i, :, c]),
                                 ("predicted", obs.t_grid, pred_phys[k, :, c])):
                cols["seq"] += [int(i)] * len(ts)
                cols["t"] += [float(v) for v in ts]
                cols["channel"] += [name] * len(ts)
                cols["unit"] += [unit] * len(ts)
                cols["kind"] += [kind] * len(ts)
                cols["value"] += [float(v) for v in vs]
    write_artifact(folder, TRAJECTORIES, {**{k: np.asarray(v) for k, v in cols.items()},
                                          "context_end": np.full(len(cols["seq"]), context),
                                          "t_unit": np.full(len(cols["seq"]), t_unit)})
