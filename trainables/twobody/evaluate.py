"""Evaluate a learned field on held-out test sets (metric names: see :mod:`.metrics`)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from trainables.common.errors import SolverError
from trainables.common.parquet_store import BufferedParquetWriter

from .config import TwoBodyConfig
from .constants import AU, MU_EARTH
from .data import STATE_SCALE, to_canonical
from .dataset import load_named
from .metrics import field_metrics, rollout_metrics, test_set_label, true_anomaly_deg
from .model import VectorField, integrate

ROLLOUT_MAX_STEPS = 50_000
PER_POINT_FILE = "per_point_errors.parquet"
PER_POINT_SCHEMA = pa.schema([("dataset", pa.string()), ("orbit_id", pa.int32()), ("sample", pa.int32()),
                              ("r_km", pa.float64()), ("r_over_a", pa.float64()),
                              ("true_anomaly_deg", pa.float64()), ("accel_err_pct", pa.float64()),
                              ("theta_deg", pa.float64())])


@torch.no_grad()
def evaluate(field: VectorField, cfg: TwoBodyConfig, r_range_km: tuple[float, float],
             artifact_dir: Path | None = None) -> dict[str, float]:
    """All test metrics, flat (``test/<set>/<metric>``); per-point errors to ``artifact_dir``."""
    param = next(field.parameters())
    dtype, device = param.dtype, param.device
    metrics: dict[str, float] = {}
    columns: dict[str, list[np.ndarray]] = {name: [] for name in PER_POINT_SCHEMA.names}
    for name in cfg.test_datasets:
        ds = load_named(name, cfg.datasets_root)
        orbits = ds.arrays()
        canon = to_canonical(orbits)
        y = torch.as_tensor(canon.states, dtype=dtype, device=device)
        a_pred = field.acceleration(y).double().cpu().numpy() * AU           # (n, k, 3) km/s^2
        summary, per_point = field_metrics(a_pred, orbits.acc, orbits.states[..., :3], r_range_km)
        if cfg.rollout:
            summary.update(_rollout(field, cfg, canon.states, canon.t, orbits.states))
        label = test_set_label(name)
        metrics.update({f"test/{label}/{k}": v for k, v in summary.items()})
        n, k = orbits.t.shape
        a = ds.orbits()["a"].to_numpy()
        columns["dataset"].append(np.full(n * k, label, dtype=object))
        columns["orbit_id"].append(np.repeat(orbits.orbit_id, k))
        columns["sample"].append(np.tile(np.arange(k, dtype=np.int32), n))
        columns["r_km"].append(per_point["r_km"])
        columns["r_over_a"].append((per_point["r_km"].reshape(n, k) / a[orbits.orbit_id][:, None]).reshape(-1))
        columns["true_anomaly_deg"].append(true_anomaly_deg(orbits.states, MU_EARTH).reshape(-1))
        columns["accel_err_pct"].append(per_point["accel_err_pct"])
        columns["theta_deg"].append(per_point["theta_deg"])
    if artifact_dir is not None and cfg.test_datasets:
        with BufferedParquetWriter(Path(artifact_dir) / PER_POINT_FILE, PER_POINT_SCHEMA, 1 << 16,
                                   {"config": cfg.to_dict()}, overwrite=True) as w:
            w.write({k: np.concatenate(v) for k, v in columns.items()})
    return metrics


def _rollout(field: VectorField, cfg: TwoBodyConfig, states: np.ndarray, t: np.ndarray,
             true_physical: np.ndarray) -> dict[str, float]:
    """Propagate each test orbit for one period from its first state (one batched solve)."""
    k = t.shape[1]
    param = next(field.parameters())
    y0 = torch.as_tensor(states[:, 0], dtype=param.dtype, device=param.device)
    dt = torch.as_tensor(t[:, 1] - t[:, 0], dtype=y0.dtype, device=y0.device)
    solver_cfg = dataclasses.replace(cfg, max_solver_steps=ROLLOUT_MAX_STEPS, adjoint=False)
    try:
        pred, _ = integrate(field, y0, dt, k + 1, solver_cfg)
    except SolverError:
        return {"rollout_pos_err_pct": math.nan, "rollout_pos_err_final_pct": math.nan,
                "rollout_energy_drift": math.nan, "rollout_failed": 1.0}
    pred_physical = pred.double().cpu().numpy() * STATE_SCALE
    truth = np.concatenate([true_physical, true_physical[:, :1]], axis=1)  # after one period: back at start
    return rollout_metrics(pred_physical, truth, MU_EARTH)
