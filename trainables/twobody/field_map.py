"""The learned field over the orbital plane, and the training orbits: artefacts for plots.

Written at the final evaluation so that analysis can draw the field residual with the
training orbits on top without loading the model (``analysis`` never imports torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainables.common.artifacts import write_artifact

from .artifacts import FIELD_GRID, TRAINING_ORBITS

from .constants import AU, MU_EARTH, R_EARTH
from .data import STATE_SCALE
from .dataset import OrbitArrays
from .model import VectorField

GRID = 81
"""Grid points per axis."""



@torch.no_grad()
def write_field_map(field: VectorField, train_physical: OrbitArrays, r_range_km: tuple[float, float],
                    folder: Path, max_orbits: int = 20) -> None:
    """``field_grid.parquet``: |a_pred - a_true| on a GRID x GRID grid of the z = 0 plane
    (square of half-width 1.5 x the largest training radius, points inside the Earth left
    out), each point moving on the prograde circular orbit through it (v = sqrt(mu / r),
    perpendicular to r), which is what the velocity-dependent features need; and
    ``training_orbits.parquet``: the (x, y) km of up to ``max_orbits`` training orbits."""
    half = 1.5 * r_range_km[1]
    xs = np.linspace(-half, half, GRID)
    x, y = (a.reshape(-1) for a in np.meshgrid(xs, xs))
    r = np.hypot(x, y)
    keep = r > R_EARTH
    x, y, r = x[keep], y[keep], r[keep]
    v = np.sqrt(MU_EARTH / r)
    states = np.stack([x, y, np.zeros_like(x), -v * y / r, v * x / r, np.zeros_like(x)], axis=-1)
    param = next(field.parameters())
    canon = torch.as_tensor(states / STATE_SCALE, dtype=param.dtype, device=param.device)
    a_pred = field.acceleration(canon).double().cpu().numpy() * AU                     # (n, 3) km/s^2
    a_true = -MU_EARTH * np.stack([x, y, np.zeros_like(x)], axis=-1) / r[:, None] ** 3
    residual = np.linalg.norm(a_pred - a_true, axis=-1)
    true_norm = np.linalg.norm(a_true, axis=-1)
    meta = {"train_r_min_km": r_range_km[0], "train_r_max_km": r_range_km[1]}
    write_artifact(folder, FIELD_GRID, {"x_km": x, "y_km": y, "r_km": r, "a_pred_km_s2": np.linalg.norm(a_pred, axis=-1),
                                        "a_true_km_s2": true_norm, "residual_km_s2": residual,
                                        "err_pct": residual / true_norm * 100.0}, meta)
    n = min(max_orbits, train_physical.n_orbits)
    k = train_physical.states.shape[1]
    write_artifact(folder, TRAINING_ORBITS, {"orbit_id": np.repeat(train_physical.orbit_id[:n], k).astype(np.int32),
                                             "x_km": train_physical.states[:n, :, 0].reshape(-1),
                                             "y_km": train_physical.states[:n, :, 1].reshape(-1)}, meta)
