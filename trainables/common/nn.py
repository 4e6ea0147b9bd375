"""Small neural-network building blocks shared by the families: activations and the MLP."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .errors import ConfigError

class ShiftedSoftplus(nn.Module):
    """softplus(x) - log 2: smooth like softplus, and 0 at x = 0 (as tanh and the ReLUs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "shifted_softplus": ShiftedSoftplus,
    "prelu": nn.PReLU,
}
"""Hidden-layer activations by name."""


def lookup(registry: dict[str, object], name: str, what: str) -> object:
    """``registry[name]``, or a :class:`ConfigError` that lists the known names."""
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(sorted(registry))}") from None


def mlp(in_dim: int, out_dim: int, width: int, depth: int, activation: str,
        final_activation: str | None = None) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units with ``activation``, then a linear output
    (followed by ``final_activation`` when given).

    Maps ``(..., in_dim) -> (..., out_dim)``.
    """
    if depth < 1 or width < 1:
        raise ConfigError(f"MLP needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
    act = lookup(ACTIVATIONS, activation, "activation")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(depth):
        layers += [nn.Linear(dim, width), act()]  # type: ignore[operator]
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    if final_activation is not None:
        layers.append(lookup(ACTIVATIONS, final_activation, "final_activation")())  # type: ignore[operator]
    return nn.Sequential(*layers)


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cuda`` or ``cpu``."""
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


