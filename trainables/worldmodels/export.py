"""The world model for export: state + action (+ params) -> the state one step dt later."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.common.export import export_torchscript

from .envs import Env
from .models import CLASSES, WorldModel


class Step(nn.Module):
    """state ``(N, d)`` float64, action ``(N,)`` int64 (held over the step), params ``(N, k)``
    float64 -> the state after one step of ``dt`` s ``(N, d)`` in the model's dtype:
    :meth:`WorldModel.rollout` with one action."""

    def __init__(self, model: WorldModel, dt: float) -> None:
        super().__init__()
        self.model = model
        self.dt = float(dt)
        self.dtype = model.s_std.dtype

    def forward(self, state: torch.Tensor, action: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return self.model.rollout(state.to(self.dtype), action[:, None], params.to(self.dtype), self.dt)[:, 0]


class StepNoParams(Step):
    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.model.rollout(state.to(self.dtype), action[:, None], None, self.dt)[:, 0]


def model_kind(model: WorldModel) -> str:
    """The ``model`` config value of a built world model."""
    return next(name for name, cls in CLASSES.items() if type(model) is cls)


EXPORTABLE = ("jump", "lstm", "first_order_ode", "newtonian", "velocity")
"""Models whose step traces to TorchScript (port_hamiltonian differentiates its energy by
autograd inside the step, which tracing cannot record)."""


def export_model(model: WorldModel, kind: str, env: Env, states: np.ndarray, actions: np.ndarray,
                 params: np.ndarray, param_names: list[str], dt: float, folder: Path) -> Path | None:
    """``model.pt`` + ``model.json`` in ``folder`` (None, nothing written, for a model kind that
    cannot be exported); example ``states`` ``(n, d)``, ``actions`` ``(n,)``, ``params`` ``(n, k)``."""
    if kind not in EXPORTABLE:
        return None
    example: dict[str, np.ndarray] = {"state": np.asarray(states, dtype=np.float64),
                                      "action": np.asarray(actions, dtype=np.int64)}
    inputs = {"state": {"units": f"{env.name} state units", "columns": list(env.state_names)},
              "action": {"units": f"index 0..{env.n_actions - 1} (0 = no action)", "columns": []}}
    wrapper: nn.Module = StepNoParams(model, dt)
    with_params = ""
    if len(param_names) and model.n_params:
        example["params"] = np.asarray(params, dtype=np.float64)
        inputs["params"] = {"units": f"{env.name} parameter units", "columns": list(param_names)}
        wrapper = Step(model, dt)
        with_params = f" + params (N, {len(param_names)}) = {', '.join(param_names)}"
    return export_torchscript(wrapper, example, folder, {
        "family": "worldmodels",
        "description": f"World model ({kind}) of the {env.name} environment: state (N, {env.dim}) = "
                       f"{', '.join(env.state_names)} + action (N,) int (held over the step){with_params} -> the "
                       f"state (N, {env.dim}) one step dt = {dt:g} s later, in the environment's units. Pass a "
                       "dict of arrays {" + ", ".join(f"'{k}'" for k in example) + "}.",
        "inputs": inputs,
        "output": {"name": "next_state", "units": f"{env.name} state units", "columns": list(env.state_names)}})
