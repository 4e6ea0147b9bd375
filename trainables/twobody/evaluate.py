"""Evaluate a learned field on held-out test sets (metric names: see :mod:`.metrics`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from trainables.common.errors import SolverError
from trainables.common.artifacts import write_artifact

from .artifacts import HEAD_OUTPUTS, PER_ORBIT, PER_POINT, ROLLOUT
from .config import TwoBodyConfig
from .constants import AU, MU_EARTH
from .data import STATE_SCALE, to_canonical
from .dataset import OrbitArrays, load_named
from .diagnostics import HEAD_ORBITS, inward_angle_deg, orbit_diagnostics, radial_component, sign_flips
from .metrics import field_metrics, invariance_gaps, rollout_metrics, test_set_label, true_anomaly_deg
from .model import VectorField, integrate

ROLLOUT_MAX_STEPS = 50_000
ROLLOUT_ORBITS = 8
"""Orbits per test set whose predicted trajectory is kept as an artefact."""



@torch.no_grad()
def evaluate(field: VectorField, cfg: TwoBodyConfig, r_range_km: tuple[float, float],
             artifact_dir: Path | None = None) -> dict[str, float]:
    """All test metrics, flat (``test/<set>/<metric>``); to ``artifact_dir``: per-point errors
    (with |a_pred|, |a_true| km/s^2) and predicted vs true rollout trajectories."""
    param = next(field.parameters())
    dtype, device = param.dtype, param.device
    metrics: dict[str, float] = {}
    columns: dict[str, list[np.ndarray]] = {name: [] for name in PER_POINT.schema.names}
    rollouts: dict[str, list[np.ndarray]] = {name: [] for name in ROLLOUT.schema.names}
    per_orbit: dict[str, list[np.ndarray]] = {name: [] for name in PER_ORBIT.schema.names}
    heads: dict[str, list[np.ndarray]] = {name: [] for name in HEAD_OUTPUTS.schema.names}
    for name in cfg.test_datasets:
        ds = load_named(name, cfg.datasets_root)
        orbits = ds.arrays()
        canon = to_canonical(orbits)
        y = torch.as_tensor(canon.states, dtype=dtype, device=device)
        a_pred = field.acceleration(y).double().cpu().numpy() * AU           # (n, k, 3) km/s^2
        summary, per_point = field_metrics(a_pred, orbits.acc, orbits.states[..., :3], r_range_km)
        label = test_set_label(name)
        n, k = orbits.t.shape
        nu = true_anomaly_deg(orbits.states, MU_EARTH)
        elements = ds.orbits()
        err = per_point["accel_err_pct"].reshape(n, k)
        e_col, a = elements["e"].to_numpy()[orbits.orbit_id], elements["a"].to_numpy()[orbits.orbit_id]
        diag, orbit_cols = orbit_diagnostics(err, a_pred, orbits.states[..., :3], nu, e_col, a)
        summary.update(diag)
        if cfg.rollout:
            rollout, pred = _rollout(field, cfg, canon.states, canon.t, orbits.states)
            summary.update(rollout)
            if pred is not None:
                _add_rollout(rollouts, label, orbits, pred)
        metrics.update({f"test/{label}/{k_}": v for k_, v in summary.items()})
        columns["dataset"].append(np.full(n * k, label, dtype=object))
        columns["orbit_id"].append(np.repeat(orbits.orbit_id, k))
        columns["sample"].append(np.tile(np.arange(k, dtype=np.int32), n))
        columns["r_km"].append(per_point["r_km"])
        columns["r_over_a"].append((per_point["r_km"].reshape(n, k) / a[:, None]).reshape(-1))
        columns["true_anomaly_deg"].append(nu.reshape(-1))
        columns["accel_err_pct"].append(per_point["accel_err_pct"])
        columns["theta_deg"].append(per_point["theta_deg"])
        columns["a_pred_km_s2"].append(per_point["a_pred_km_s2"])
        columns["a_true_km_s2"].append(np.linalg.norm(orbits.acc, axis=-1).reshape(-1))
        per_orbit["dataset"].append(np.full(n, label, dtype=object))
        per_orbit["orbit_id"].append(orbits.orbit_id.astype(np.int32))
        for key, values in orbit_cols.items():
            per_orbit[key].append(values)
        _add_head_outputs(heads, field, label, y, a_pred, orbits, nu, err)
    metrics.update(invariance_gaps(metrics, cfg.test_datasets))
    if artifact_dir is not None and cfg.test_datasets:
        for fmt, data in ((PER_POINT, columns), (ROLLOUT, rollouts), (PER_ORBIT, per_orbit), (HEAD_OUTPUTS, heads)):
            if data["dataset"]:
                write_artifact(artifact_dir, fmt, {k: np.concatenate(v) for k, v in data.items()},
                               {"config": cfg.to_dict()})
    return metrics


def _add_head_outputs(out: dict[str, list[np.ndarray]], field: VectorField, label: str, y: torch.Tensor,
                      a_pred: np.ndarray, orbits: OrbitArrays, nu: np.ndarray, err: np.ndarray) -> None:
    """The MLP's first output and the learned acceleration's direction along the first
    :data:`HEAD_ORBITS` orbits (see :mod:`.diagnostics`)."""
    n = min(HEAD_ORBITS, y.shape[0])
    k = y.shape[1]
    m0 = field.net(field.feature(y[:n], field.harmonic_order))[..., 0].double().cpu().numpy()
    pos = orbits.states[:n, :, :3]
    out["dataset"].append(np.full(n * k, label, dtype=object))
    out["orbit_id"].append(np.repeat(orbits.orbit_id[:n], k).astype(np.int32))
    out["sample"].append(np.tile(np.arange(k, dtype=np.int32), n))
    out["true_anomaly_deg"].append(nu[:n].reshape(-1))
    out["m0"].append(m0.reshape(-1))
    out["a_radial_km_s2"].append(radial_component(a_pred[:n], pos).reshape(-1))
    out["inward_angle_deg"].append(inward_angle_deg(a_pred[:n], pos).reshape(-1))
    out["accel_err_pct"].append(err[:n].reshape(-1))
    out["sign_flip"].append(sign_flips(radial_component(a_pred[:n], pos)).reshape(-1))


def _add_rollout(out: dict[str, list[np.ndarray]], label: str, orbits: OrbitArrays, pred: np.ndarray) -> None:
    """The first ROLLOUT_ORBITS orbits' true and predicted positions ``pred (n, K+1, 6)`` km."""
    n = min(ROLLOUT_ORBITS, pred.shape[0])
    k = orbits.t.shape[1]
    true = orbits.states[:n, :, :3]
    out["dataset"].append(np.full(n * k, label, dtype=object))
    out["orbit_id"].append(np.repeat(orbits.orbit_id[:n], k))
    out["sample"].append(np.tile(np.arange(k, dtype=np.int32), n))
    for i, axis in enumerate("xyz"):
        out[f"{axis}_km"].append(true[..., i].reshape(-1))
        out[f"{axis}_pred_km"].append(pred[:n, :k, i].reshape(-1))


def _rollout(field: VectorField, cfg: TwoBodyConfig, states: np.ndarray, t: np.ndarray,
             true_physical: np.ndarray) -> tuple[dict[str, float], np.ndarray | None]:
    """Propagate each test orbit for one period from its first state (one batched solve).

    Returns the metrics and the predicted states ``(n, K+1, 6)`` km, km/s (None if it failed).
    """
    k = t.shape[1]
    param = next(field.parameters())
    y0 = torch.as_tensor(states[:, 0], dtype=param.dtype, device=param.device)
    dt = torch.as_tensor(t[:, 1] - t[:, 0], dtype=y0.dtype, device=y0.device)
    solver_cfg = dataclasses.replace(cfg, max_solver_steps=ROLLOUT_MAX_STEPS, adjoint=False)
    try:
        pred, _ = integrate(field, y0, dt, k + 1, solver_cfg)
    except SolverError:
        return {"rollout_pos_err_pct": math.nan, "rollout_pos_err_final_pct": math.nan,
                "rollout_energy_drift": math.nan, "rollout_accel_err_pct": math.nan, "rollout_failed": 1.0}, None
    pred_physical = pred.double().cpu().numpy() * STATE_SCALE
    truth = np.concatenate([true_physical, true_physical[:, :1]], axis=1)  # after one period: back at start
    a_along = field.acceleration(pred).double().cpu().numpy() * AU                  # the field on its own orbit
    r = pred_physical[..., :3]
    gravity = -MU_EARTH * r / np.linalg.norm(r, axis=-1, keepdims=True) ** 3
    along = np.linalg.norm(a_along - gravity, axis=-1) / np.linalg.norm(gravity, axis=-1) * 100.0
    return {**rollout_metrics(pred_physical, truth, MU_EARTH), "rollout_accel_err_pct": float(np.mean(along))}, \
        pred_physical
