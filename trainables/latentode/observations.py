"""Sparse, irregular, noisy observation sets drawn from noise-free trajectories (deterministic).

Each trajectory ``i`` of a split gives ``windows`` observation sets; for window ``r`` a generator
seeded ``[obs_seed, split index, i, r]`` draws:

- a window start on the trajectory's grid (uniform, so the window fits);
- ``n_obs`` distinct observation times among the grid points of the context window
  ``[start, start + context)`` and ``n_forecast_obs`` among those of the forecast window
  ``[start + context, start + context + forecast)`` (irregular: each a uniform draw without
  replacement, then sorted);
- Gaussian noise of standard deviation ``noise`` (in the channels' physical units) on every
  observed value.

Held out for the metrics: the context-window grid points not observed (interpolation; at most
:data:`INTERP_POINTS`, evenly picked) and every forecast-window grid point (extrapolation), both
noise free. Times are in the trajectories' unit (s; TU for two-body) from the window's start.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from trainables.common.errors import ConfigError

from .sources import SPLIT_INDEX, Trajectories

INTERP_POINTS = 16


@dataclass
class ObservationSet:
    """One split's observations. Per trajectory ``n``: observed times ``t_obs`` ``(n, K)`` (s; TU for two-body) (the
    context's ``n_obs`` then the forecast's), values ``x_obs`` ``(n, K, D)`` (noisy) and
    ``in_context`` ``(K,)`` bool (times in the trajectories' unit); held out: ``t_interp`` ``(n, I)`` with truth ``x_interp``, and
    ``t_forecast`` ``(F,)`` (the same for all) with truth ``x_forecast`` ``(n, F, D)``; the whole
    window's grid ``t_grid`` ``(W,)`` with its noise-free values ``x_grid`` ``(n, W, D)``."""

    t_obs: np.ndarray
    x_obs: np.ndarray
    in_context: np.ndarray
    t_interp: np.ndarray
    x_interp: np.ndarray
    t_forecast: np.ndarray
    x_forecast: np.ndarray
    t_grid: np.ndarray
    x_grid: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]
    content_hash: str


def draw(traj: Trajectories, split: str, context: float, forecast: float, n_obs: int, n_forecast_obs: int,
         noise: float, obs_seed: int, windows: int = 1) -> ObservationSet:
    """The observation set of ``traj`` (see the module docstring).

    Raises:
        ConfigError: the windows do not fit the trajectories, or hold fewer grid points than observations.
    """
    dt = float(traj.t[1] - traj.t[0])
    n_ctx, n_fc = int(round(context / dt)), int(round(forecast / dt))
    if n_ctx + n_fc > len(traj.t):
        raise ConfigError(f"config.context + config.forecast: {context + forecast:g} exceed the trajectories' "
                          f"{(len(traj.t) - 1) * dt:g} (t_end)")
    if n_obs > n_ctx or n_forecast_obs > n_fc:
        raise ConfigError(f"config.n_obs / n_forecast_obs: {n_obs} / {n_forecast_obs} observations need that many "
                          f"grid points; the windows hold {n_ctx} / {n_fc} (dt {dt:g})")
    if windows > 1:  # each trajectory repeated, one window each
        traj = Trajectories(traj.t, np.repeat(traj.x, windows, axis=0), traj.channels, traj.units, traj.content_hash)
    n, d = traj.x.shape[0], traj.x.shape[2]
    t_obs = np.zeros((n, n_obs + n_forecast_obs))
    x_obs = np.zeros((n, n_obs + n_forecast_obs, d))
    n_int = min(INTERP_POINTS, n_ctx - n_obs)
    t_int, x_int = np.zeros((n, n_int)), np.zeros((n, n_int, d))
    x_grid = np.zeros((n, n_ctx + n_fc, d))
    for i in range(n):
        rng = np.random.default_rng([obs_seed, SPLIT_INDEX[split], i // windows, i % windows])
        start = int(rng.integers(0, len(traj.t) - n_ctx - n_fc + 1))
        ctx = np.sort(rng.choice(n_ctx, n_obs, replace=False))
        fc = np.sort(rng.choice(n_fc, n_forecast_obs, replace=False)) + n_ctx
        idx = np.concatenate([ctx, fc])
        t_obs[i] = idx * dt
        x_obs[i] = traj.x[i, start + idx] + noise * rng.standard_normal((len(idx), d))
        free = np.setdiff1d(np.arange(n_ctx), ctx)
        pick = free[np.linspace(0, len(free) - 1, n_int).round().astype(int)] if n_int else free[:0]
        t_int[i], x_int[i] = pick * dt, traj.x[i, start + pick]
        x_grid[i] = traj.x[i, start:start + n_ctx + n_fc]
    in_context = np.arange(n_obs + n_forecast_obs) < n_obs
    settings = json.dumps([traj.content_hash, split, context, forecast, n_obs, n_forecast_obs, noise, obs_seed,
                           list(traj.channels), windows])
    digest = hashlib.sha256(settings.encode() + x_obs.tobytes() + t_obs.tobytes()).hexdigest()
    return ObservationSet(t_obs, x_obs, in_context, t_int, x_int, (n_ctx + np.arange(n_fc)) * dt, x_grid[:, n_ctx:],
                          np.arange(n_ctx + n_fc) * dt, x_grid, traj.channels, traj.units, digest)
