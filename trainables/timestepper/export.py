"""The learned time-stepper for export: features of a state -> the chosen dt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.common.export import export_torchscript

from .features import History, analytic
from .nbody import System, verlet
from .stepper import StepNet


class ChosenDt(nn.Module):
    """features ``(N, F)`` float64 -> dt ``(N,)`` float64 = exp(StepNet(features)), in N-body time units."""

    def __init__(self, net: StepNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.net(features))


def example_features(system: System, kind: str, history_len: int, n: int = 8) -> np.ndarray:
    """Features ``(n, F)`` of the first ``n`` states of a fixed-step Verlet run (period / 64) from the
    system's initial state, built exactly as the learned integration builds them."""
    m = torch.as_tensor(system.m, dtype=torch.float64)
    q, v = torch.as_tensor(system.q), torch.as_tensor(system.v)
    pairs = len(system.m) * (len(system.m) - 1) // 2
    history = History(history_len if kind == "history" else 1, 4 * pairs)
    rows = []
    for _ in range(n):
        history.push(analytic(q, v, m))
        rows.append(history.rows.reshape(-1).numpy().copy())
        q, v = verlet(q, v, m, system.period / 64)
    return np.stack(rows)


def export_model(net: StepNet, system: System, kind: str, history_len: int, folder: Path) -> Path:
    """``model.pt`` + ``model.json`` in ``folder``."""
    x = example_features(system, kind, history_len)
    n = len(system.m)
    pairs = [f"{i}{j}" for i in range(n) for j in range(i + 1, n)]
    cols = [f"{name}_{p}" for p in pairs for name in ("log_r", "log_v_rel", "log_a_rel", "log_t_ff")]
    hist = history_len if kind == "history" else 1
    if hist > 1:
        cols = [f"{c}_t-{hist - 1 - k}" for k in range(hist) for c in cols]
    what = (f"for each body pair i < j ({', '.join(pairs)}) of the current state: log r_ij, log(|v_j - v_i| + 1e-12), "
            "log((m_i + m_j + 1e-12) / r_ij^2), log sqrt(r_ij^3 / (m_i + m_j + 1e-12))")
    if hist > 1:
        what = f"the last {hist} states' features, oldest first, zeros before the start; per state {what}"
    return export_torchscript(ChosenDt(net), {"features": x}, folder, {
        "family": "timestepper",
        "description": f"Learned time-stepper: features (N, {x.shape[1]}) -> the chosen velocity-Verlet step dt (N,) "
                       f"in N-body time units (G = 1, the system's lengths and masses). Features: {what}.",
        "inputs": {"features": {"units": "log of N-body units (G = 1)", "columns": cols}},
        "output": {"name": "dt", "units": "N-body time units (G = 1)", "columns": []}})
