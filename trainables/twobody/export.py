"""The two-body model for export: states (km, km/s) -> the learned acceleration (km/s^2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.common.export import export_torchscript

from .constants import AU
from .data import STATE_SCALE
from .dataset import OrbitArrays
from .model import VectorField

STATE_COLUMNS = ["x", "y", "z", "vx", "vy", "vz"]


class Acceleration(nn.Module):
    """``(N, 6)`` float64 states [x, y, z km, vx, vy, vz km/s] -> ``(N, 3)`` float64 km/s^2: the
    learned field's acceleration, the canonical-unit scaling included (as :mod:`.field_map` does)."""

    def __init__(self, field: VectorField) -> None:
        super().__init__()
        self.field = field
        self.dtype = next(field.parameters()).dtype
        self.register_buffer("scale", torch.as_tensor(STATE_SCALE, dtype=torch.float64))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        canon = (states.to(torch.float64) / self.scale).to(self.dtype)
        return self.field.acceleration(canon).to(torch.float64) * AU


def export_model(field: VectorField, train_physical: OrbitArrays, folder: Path, n: int = 8) -> Path:
    """``model.pt`` + ``model.json`` in ``folder``; the example is ``n`` states of the first training orbit."""
    states = train_physical.states[0]
    example = np.asarray(states[np.linspace(0, len(states) - 1, n).astype(int)], dtype=np.float64)
    return export_torchscript(Acceleration(field), {"states": example}, folder, {
        "family": "twobody",
        "description": "Two-body neural ODE: the learned acceleration (N, 3) in km/s^2 (ax, ay, az) at states (N, 6) "
                       "x, y, z in km and vx, vy, vz in km/s (Earth-centred inertial).",
        "inputs": {"states": {"units": "km, km/s", "columns": STATE_COLUMNS}},
        "output": {"name": "acceleration", "units": "km/s^2", "columns": ["ax", "ay", "az"]}})
