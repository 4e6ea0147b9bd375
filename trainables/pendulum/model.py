"""The sequence model: a stacked LSTM / GRU / RNN with a linear head on the last hidden state.

Normalisation statistics are buffers of the model, so a saved model carries them and
:meth:`SequenceModel.predict` works in physical units: it takes the last W physical states,
encodes and normalises them, runs the network and decodes its K predicted steps back to
unwrapped angles (rad) and angular velocities (rad/s).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .windows import Normaliser, target_dim

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
TARGETS = ("delta", "next")


class SequenceModel(nn.Module):
    """Maps normalised inputs ``(B, W, F)`` to normalised targets ``(B, K, D)``.

    Args:
        cell: lstm | gru | rnn; hidden: units per layer; layers: stacked layers; dropout
            between layers (ignored with one layer); features: F (6, or 10 with parameters);
        target: delta | next (see :mod:`.windows`); horizon: K steps predicted at once.
    """

    def __init__(self, cell: str, hidden: int, layers: int, dropout: float, features: int, target: str,
                 horizon: int) -> None:
        super().__init__()
        self.target, self.horizon, self.out_dim = target, horizon, target_dim(target)
        self.rnn = CELLS[cell](features, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                               batch_first=True)
        self.head = nn.Linear(hidden, horizon * self.out_dim)
        for name, size in (("x_mean", features), ("x_std", features), ("y_mean", self.out_dim),
                           ("y_std", self.out_dim)):
            self.register_buffer(name, torch.zeros(size) if name.endswith("mean") else torch.ones(size))

    def set_normaliser(self, norm: Normaliser) -> None:
        for name in ("x_mean", "x_std", "y_mean", "y_std"):
            getattr(self, name).copy_(torch.as_tensor(getattr(norm, name)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs ``(B, W, F)`` -> normalised predictions ``(B, K, D)``."""
        out, _ = self.rnn((x - self.x_mean) / self.x_std)
        return self.head(out[:, -1]).view(x.shape[0], self.horizon, self.out_dim)

    def normalise_targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    @torch.no_grad()
    def predict(self, states: torch.Tensor, params: torch.Tensor | None) -> torch.Tensor:
        """Next K physical states ``(B, K, 4)`` from the last W ``states`` ``(B, W, 4)`` (rad, rad/s).

        ``params`` ``(B, 4)`` (l1, l2, m1, m2) when the model was trained with them, else None.
        """
        th1, th2, w1, w2 = states.unbind(-1)
        x = torch.stack([th1.sin(), th1.cos(), th2.sin(), th2.cos(), w1, w2], -1)
        if params is not None:
            x = torch.cat([x, params[:, None, :].expand(-1, states.shape[1], -1)], -1)
        y = self(x.to(self.x_mean.dtype)) * self.y_std + self.y_mean  # (B, K, D)
        last = states[:, -1].to(y.dtype)
        if self.target == "delta":
            return last[:, None, :] + torch.cumsum(y, dim=1)
        angles = torch.atan2(y[..., [0, 2]], y[..., [1, 3]])  # wrapped; keep the trajectory continuous
        prev = last[:, None, :2]
        steps = []
        for k in range(self.horizon):
            prev = prev + torch.remainder(angles[:, k:k + 1] - prev + np.pi, 2 * np.pi) - np.pi
            steps.append(prev)
        return torch.cat([torch.cat(steps, 1), y[..., 4:6]], -1)

    @torch.no_grad()
    def rollout(self, window: torch.Tensor, params: torch.Tensor | None, steps: int) -> torch.Tensor:
        """Open loop: ``steps`` states ``(B, steps, 4)`` after ``window`` ``(B, W, 4)``, feeding
        predictions back as inputs."""
        w = window.shape[1]
        out = []
        made = 0
        while made < steps:
            nxt = self.predict(window, params)
            out.append(nxt)
            made += nxt.shape[1]
            window = torch.cat([window, nxt.to(window.dtype)], 1)[:, -w:]
        return torch.cat(out, 1)[:, :steps]

