"""Residual and plain MLPs with their normalisation inside, so a saved model predicts in physical units.

``ResidualMLP``: a stem ``Linear(in, widths[0])`` + activation, then one block per further
width, ``h <- act(Linear(h)) + skip(h)`` with ``skip`` the identity when the width is unchanged
and a bias-free linear projection when it changes (or always, with ``skip: projection``); a
linear output layer. ``plain``: the same layers without skips. Every ``Linear`` is
Xavier-uniform initialised with zero bias. Buffers ``x_mean, x_std (in,)`` and ``y_mean,
y_std (out,)`` hold the training statistics (a zero std is stored as 1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.common.nn import ACTIVATIONS, lookup

MODELS = ("residual", "plain")
SKIPS = ("auto", "projection")


class _Block(nn.Module):
    def __init__(self, dim: int, width: int, act: type[nn.Module], residual: bool, project: bool) -> None:
        super().__init__()
        self.linear, self.act = nn.Linear(dim, width), act()
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Linear(dim, width, bias=False) if project or dim != width else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.act(self.linear(h))
        return out + self.skip(h) if self.skip is not None else out


class RegressionMLP(nn.Module):
    """``(B, in)`` physical inputs -> ``(B, out)`` physical outputs via :meth:`predict`;
    :meth:`forward` maps normalised inputs to normalised outputs (what the loss sees)."""

    def __init__(self, in_dim: int, out_dim: int, widths: list[int], activation: str, model: str = "residual",
                 skip: str = "auto") -> None:
        super().__init__()
        act = lookup(ACTIVATIONS, activation, "activation")
        self.stem = nn.Sequential(nn.Linear(in_dim, widths[0]), act())  # type: ignore[operator]
        self.blocks = nn.ModuleList(_Block(a, b, act, model == "residual", skip == "projection")  # type: ignore[arg-type]
                                    for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(widths[-1], out_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for name, size in (("x_mean", in_dim), ("x_std", in_dim), ("y_mean", out_dim), ("y_std", out_dim)):
            self.register_buffer(name, torch.zeros(size) if name.endswith("mean") else torch.ones(size))

    def set_normalisation(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the buffers to training inputs ``(N, in)`` and outputs ``(N, out)``."""
        for prefix, data in (("x", x), ("y", y)):
            mean, std = data.mean(0), data.std(0)
            std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
            getattr(self, f"{prefix}_mean").copy_(torch.as_tensor(mean))
            getattr(self, f"{prefix}_std").copy_(torch.as_tensor(std))

    def normalise(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        xn = (x - self.x_mean) / self.x_std
        return xn, None if y is None else (y - self.y_mean) / self.y_std

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        h = self.stem(xn)
        for block in self.blocks:
            h = block(h)
        return self.out(h)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Physical outputs ``(B, out)`` of physical inputs ``(B, in)``."""
        return self(self.normalise(x.to(self.x_mean.dtype))[0]) * self.y_std + self.y_mean
