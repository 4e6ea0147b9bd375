"""Test metrics of a world model (all errors normalised by the training states' std per dimension).

- ``rollout_mse_h<H>``: open loop from each test sequence's first state under its true
  actions; mean squared normalised error of the state H steps later (H capped by the data).
- ``energy_drift``: the model rolled out with no forcing (action 0) from the test starts for
  the sequence length; |E(s_T) - E(s_0)| with the env's true energy of the predicted states,
  mean over sequences, divided by the mean |E(s_0)|; ``energy_drift_true``: the same for the
  reference integrator (its tolerance).
- ``dt_x<f>_mse`` for f in 0.5, 2, 4: no forcing, the same time span as 10 training steps
  (at least one step), the model integrated at dt * f against the reference at dt * f; the
  normalised MSE over the whole span. Discrete-time models (jump, lstm) cannot change dt: they
  report NaN and the tag ``dt_generalisation: not applicable (discrete-time model)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import DT_FACTORS
from .data import Sequences
from .envs import Env
from .models import WorldModel


def _mse(pred: np.ndarray, true: np.ndarray, std: np.ndarray) -> float:
    return float((((pred - true) / std) ** 2).mean())


def evaluate(model: WorldModel, env: Env, test: Sequences, horizons: list[int]) -> dict[str, float]:
    model.eval()
    std = model.s_std.cpu().numpy()
    dev, dtype = model.s_std.device, model.s_std.dtype
    s0 = torch.as_tensor(test.states[:, 0], dtype=dtype, device=dev)
    p = torch.as_tensor(test.params, dtype=dtype, device=dev)
    steps = test.actions.shape[1]
    out: dict[str, float] = {}
    with torch.no_grad():
        roll = model.rollout(s0, torch.as_tensor(test.actions, device=dev), p, test.dt).cpu().numpy()
        for h in horizons:
            out[f"test/rollout_mse_h{h}"] = _mse(roll[:, h - 1], test.states[:, h], std) if h <= steps else math.nan
        idle = np.zeros((len(s0), steps), dtype=np.int64)
        free = model.rollout(s0, torch.as_tensor(idle, device=dev), p, test.dt).cpu().numpy()
    params = test.param_dict()
    e0 = env.energy(test.states[:, 0], params)
    scale = max(float(np.abs(e0).mean()), 1e-12)
    out["test/energy_drift"] = float(np.abs(env.energy(free[:, -1], params) - e0).mean() / scale)
    truth = env.rollout(test.states[:, 0], idle, params, test.dt)
    out["test/energy_drift_true"] = float(np.abs(env.energy(truth[:, -1], params) - e0).mean() / scale)
    span = 10 * test.dt
    for f in DT_FACTORS:
        key = f"test/dt_x{f:g}_mse"
        if not model.continuous:
            out[key] = math.nan
            continue
        dt, n = test.dt * f, max(1, int(round(span / (test.dt * f))))
        zeros = np.zeros((len(s0), n), dtype=np.int64)
        ref = env.rollout(test.states[:, 0], zeros, params, dt)[:, 1:]
        with torch.no_grad():
            pred = model.rollout(s0, torch.as_tensor(zeros, device=dev), p, dt).cpu().numpy()
        out[key] = _mse(pred, ref, std)
    model.train()
    return out
