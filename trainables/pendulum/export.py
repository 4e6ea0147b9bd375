"""The double-pendulum sequence model for export: a window of past states -> the next state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.common.export import export_torchscript

from .config import STATE_NAMES
from .dataset import PARAM_COLUMNS
from .model import SequenceModel


class NextState(nn.Module):
    """``(N, W, 4)`` (or ``(N, W, 8)`` with the parameters l1, l2, m1, m2 appended to every row;
    those of the last row are used) float64 -> the next state ``(N, 4)`` float64 (theta1, theta2
    in rad, unwrapped like the input; omega1, omega2 in rad/s): :meth:`SequenceModel.predict`'s
    first step."""

    def __init__(self, model: SequenceModel, use_params: bool) -> None:
        super().__init__()
        self.model = model
        self.use_params = use_params

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        params = window[:, -1, 4:8] if self.use_params else None
        return self.model.predict(window[..., :4], params)[:, 0]


def export_model(model: SequenceModel, windows: np.ndarray, params: np.ndarray | None, folder: Path) -> Path:
    """``model.pt`` + ``model.json`` in ``folder``; example ``windows`` ``(n, W, 4)``, ``params`` ``(n, 4)``
    (None when the model does not use them). ``model`` is a float64 CPU model (as the evaluation uses)."""
    use = params is not None
    x = np.asarray(windows, dtype=np.float64)
    if use:
        x = np.concatenate([x, np.broadcast_to(np.asarray(params, dtype=np.float64)[:, None, :],
                                               (*x.shape[:2], 4))], -1)
    w = x.shape[1]
    columns = list(STATE_NAMES) + (list(PARAM_COLUMNS) if use else [])
    extra = " plus the parameters l1, l2 (m) and m1, m2 (kg) on every row" if use else ""
    return export_torchscript(NextState(model, use), {"window": x}, folder, {
        "family": "pendulum",
        "description": f"Double-pendulum sequence model: a window (N, {w}, {x.shape[2]}) of the last {w} states "
                       f"theta1, theta2 (rad), omega1, omega2 (rad/s), oldest first{extra} -> the next state "
                       "(N, 4) theta1, theta2 (rad, continuing the input's unwrapped angles), omega1, omega2 (rad/s).",
        "inputs": {"window": {"units": "rad, rad/s" + (", m, kg" if use else ""), "columns": columns}},
        "output": {"name": "next_state", "units": "rad, rad/s", "columns": list(STATE_NAMES)}})
