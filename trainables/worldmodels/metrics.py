"""Test metrics of a world model (all errors normalised by the training states' std per dimension).

- ``rollout_mse_h<H>``: open loop from each test sequence's first state under its true
  actions; mean squared normalised error of the state H steps later (H capped by the data);
  ``rollout_mse_mean``: the same averaged over every horizon step of the sequence (the whole
  curve is the ``worldmodels.horizon_curve`` artefact, per state dimension too).
- ``energy_drift``: the model rolled out with no forcing (action 0) from the test starts for
  the sequence length; |E(s_T) - E(s_0)| with the env's true energy of the predicted states,
  mean over sequences, divided by the mean |E(s_0)|; ``energy_drift_true``: the same for the
  reference integrator (its tolerance).
- ``dt_x<f>_mse`` for f in ``dt_factors`` (default 0.5, 2, 4): no forcing, the same time span as 10 training steps
  (at least one step), the model integrated at dt * f against the reference at dt * f; the
  normalised MSE over the whole span. Discrete-time models (jump, lstm) cannot change dt: they
  report NaN and the tag ``dt_generalisation: not applicable (discrete-time model)``.

With ``artifact_dir``, also the artefacts of :mod:`.artifacts` (energy and phase portrait of a
long free rollout of a few test sequences).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from trainables.common.artifacts import write_artifact

from .artifacts import ENERGY, HORIZON_CURVE, LONG_FACTOR, LONG_SEQS, PHASE, PHASE_SEQS
from .config import DT_FACTORS
from .data import Sequences
from .envs import Env
from .export import export_model, model_kind
from .models import WorldModel


def _mse(pred: np.ndarray, true: np.ndarray, std: np.ndarray) -> float:
    return float((((pred - true) / std) ** 2).mean())


def evaluate(model: WorldModel, env: Env, test: Sequences, horizons: list[int],
             artifact_dir: Path | None = None, dt_factors: Sequence[float] = DT_FACTORS) -> dict[str, float]:
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
        curve = (((roll - test.states[:, 1:]) / std) ** 2).mean(axis=0)               # (steps, d): every horizon
        out["test/rollout_mse_mean"] = float(curve.mean())
        idle = np.zeros((len(s0), steps), dtype=np.int64)
        free = model.rollout(s0, torch.as_tensor(idle, device=dev), p, test.dt).cpu().numpy()
    params = test.param_dict()
    e0 = env.energy(test.states[:, 0], params)
    scale = max(float(np.abs(e0).mean()), 1e-12)
    out["test/energy_drift"] = float(np.abs(env.energy(free[:, -1], params) - e0).mean() / scale)
    truth = env.rollout(test.states[:, 0], idle, params, test.dt)
    out["test/energy_drift_true"] = float(np.abs(env.energy(truth[:, -1], params) - e0).mean() / scale)
    span = 10 * test.dt
    for f in dt_factors:
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
    if artifact_dir is not None:
        write_long_rollout(artifact_dir, model, env, test)
        write_artifact(artifact_dir, HORIZON_CURVE, {
            "step": np.repeat(np.arange(1, steps + 1, dtype=np.int32), len(env.state_names) + 1),
            "t": np.repeat(np.arange(1, steps + 1) * test.dt, len(env.state_names) + 1),
            "state": np.tile(np.array(["all", *env.state_names], dtype=object), steps),
            "mse": np.concatenate([curve.mean(axis=1, keepdims=True), curve], axis=1).reshape(-1)},
            {"env": env.name, "dt": test.dt})
        export_model(model, model_kind(model), env, test.states[:8, 0], test.actions[:8, 0], test.params[:8],
                     test.param_names, test.dt, artifact_dir)
    model.train()
    return out


def write_long_rollout(folder: Path, model: WorldModel, env: Env, test: Sequences) -> None:
    """The ``worldmodels.energy`` and ``worldmodels.phase`` artefacts: the model and the reference
    rolled out free (action 0) for :data:`LONG_FACTOR` sequence lengths from the first test
    sequences' first states. A prediction that blows up is kept as it is (inf/NaN included): the plots show it."""
    n = min(LONG_SEQS, len(test.states))
    dev, dtype = model.s_std.device, model.s_std.dtype
    s0, params = test.states[:n, 0], {k: v[:n] for k, v in test.param_dict().items()}
    long_steps = LONG_FACTOR * test.actions.shape[1]
    idle = np.zeros((n, long_steps), dtype=np.int64)
    truth = env.rollout(s0, idle, params, test.dt)                                       # (n, T + 1, d)
    p = torch.as_tensor(test.params[:n], dtype=dtype, device=dev)
    start = torch.as_tensor(s0, dtype=dtype, device=dev)
    with torch.no_grad():
        pred = model.rollout(start, torch.as_tensor(idle, device=dev), p, test.dt)
        pred = torch.cat([start[:, None], pred], 1)
        energy = getattr(model, "energy", None)
        learned = (torch.stack([energy(pred[:, k], p) for k in range(pred.shape[1])], 1).cpu().numpy()
                   if callable(energy) else np.full(truth.shape[:2], np.nan))
    pred_np = pred.double().cpu().numpy()
    steps = np.arange(long_steps + 1, dtype=np.int32)
    with np.errstate(all="ignore"):
        e_true = np.stack([env.energy(truth[:, k], params) for k in steps], 1)
        e_pred = np.stack([env.energy(pred_np[:, k], params) for k in steps], 1)
    write_artifact(folder, ENERGY, {
        "seq": np.repeat(np.arange(n, dtype=np.int32), len(steps)), "step": np.tile(steps, n),
        "t": np.tile(steps * test.dt, n), "energy_true": e_true.reshape(-1), "energy_pred": e_pred.reshape(-1),
        "learned_h": learned.astype(np.float64).reshape(-1)}, {"env": env.name, "dt": test.dt})
    k, q = min(PHASE_SEQS, n), env.q_dim
    cols: dict[str, list[np.ndarray]] = {c: [] for c in PHASE.schema.names}
    for i in range(k):
        for j in range(q):
            size = len(steps)
            cols["seq"].append(np.full(size, i, dtype=np.int32))
            cols["step"].append(steps)
            cols["t"].append(steps * test.dt)
            cols["pair"].append(np.full(size, j, dtype=np.int32))
            cols["q_name"].append(np.full(size, env.state_names[j], dtype=object))
            cols["v_name"].append(np.full(size, env.state_names[q + j], dtype=object))
            cols["q_true"].append(truth[i, :, j])
            cols["v_true"].append(truth[i, :, q + j])
            cols["q_pred"].append(pred_np[i, :, j])
            cols["v_pred"].append(pred_np[i, :, q + j])
    write_artifact(folder, PHASE, {c: np.concatenate(v) for c, v in cols.items()}, {"env": env.name, "dt": test.dt})
