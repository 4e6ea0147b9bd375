"""The latent ODE (Rubanova, Chen and Duvenaud 2019) and its recurrent baseline.

Shapes: ``B`` trajectories, ``K`` observations each (times ``t`` ``(B, K)`` s from the window's
start, values ``x`` ``(B, K, D)`` in normalised units, ``mask`` ``(K,)`` marking the context
observations the encoder sees), ``L`` latent size, ``Q`` query times ``(B, Q)``.

- Encoder (``gru``): a GRU run backwards in time over the context observations, input
  ``[x_k, (t_(k+1) - t_k) / time_scale]``, then one last step with input ``[0, t_0]`` (the time from the window's
  start to the first observation, where ``z0`` lives); ``odernn`` also evolves the hidden state
  across every gap by a learned ODE (4 RK4 steps per gap). Its last state gives ``mu``,
  ``logvar`` of ``z0`` at t = 0.
- Latent field: ``dz/dt = MLP(z)`` (``width``, ``depth``, ``activation``), integrated by
  torchdiffeq's ``odeint`` (``method``; fixed-step methods take ``substep`` s steps) over the
  sorted union of the batch's query times; each trajectory's values gathered from it.
- Decoder: ``MLP(z) -> x`` (normalised units).
- ``gru`` baseline (``model: gru``): the same encoder gives a deterministic state, which a GRU
  cell steps along the data's time grid (input: the step in units of the time scale); no ODE, no KL.
- ``state_ode`` baseline (two-body, full state observed): no encoder and no latent space; the
  two-body family's neural vector field (:class:`trainables.twobody.model.VectorField`, its default
  features and head, with ``width``, ``depth``, ``activation``) integrated in canonical units from each
  trajectory's first context observation (noisy, as observed), forwards to the later query times and
  backwards to the earlier ones; no KL.

Times enter in units of ``time_scale`` (s): the encoder's gaps are divided by it and the field is
``MLP(z) / time_scale``, so a freshly initialised field already moves on the system's time scale
(a double pendulum's modes have periods of 1-3 s). Fixed-step solvers interpolate between their
steps with cubic Hermite polynomials.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchdiffeq import odeint

from trainables.common.nn import mlp
from trainables.twobody.config import TwoBodyConfig
from trainables.twobody.model import VectorField

ENCODERS = ("gru", "odernn")
MODELS = ("latent_ode", "gru", "state_ode")
ODE_MODELS = ("latent_ode", "state_ode")
"""Models with a vector field integrated by torchdiffeq (they report ``nfe_per_step``)."""
FIXED_METHODS = ("rk4", "midpoint", "euler")
METHODS = (*FIXED_METHODS, "dopri5")


class Normalised(nn.Module):
    """A model that carries the normalisation of its observations (buffers ``norm_mean``, ``norm_std``
    ``(D,)``, the training trajectories', saved with its weights): inputs and outputs of ``forward``
    are ``(physical - norm_mean) / norm_std``, so an evaluation under a changed config (another
    forecast window, another dataset) normalises as training did."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("norm_mean", torch.as_tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("norm_std", torch.as_tensor(np.asarray(std), dtype=torch.float32))

    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` ``(D,)`` as numpy arrays (float64)."""
        return self.norm_mean.cpu().double().numpy(), self.norm_std.cpu().double().numpy()


class _Counted(nn.Module):
    """The vector field ``f(t, z) = net(z) / time_scale`` that counts its evaluations (``nfe``)."""

    def __init__(self, net: nn.Module, time_scale: float) -> None:
        super().__init__()
        self.net, self.nfe, self.time_scale = net, 0, time_scale

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.net(z) / self.time_scale


class Encoder(nn.Module):
    """Context observations -> ``mu, logvar`` ``(B, L)`` (or the hidden state, for the baseline)."""

    def __init__(self, channels: int, hidden: int, latent: int, kind: str, time_scale: float) -> None:
        super().__init__()
        self.cell = nn.GRUCell(channels + 1, hidden)
        self.kind, self.time_scale = kind, time_scale
        self.evolve = mlp(hidden, hidden, hidden, 1, "tanh") if kind == "odernn" else None
        self.head = nn.Linear(hidden, 2 * latent)

    def hidden(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The state after the backward pass over the observations where ``mask`` is true, ``(B, H)``."""
        t, x = t[:, mask] / self.time_scale, x[:, mask]  # gaps in units of the time scale
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        for k in range(t.shape[1] - 1, -1, -1):
            gap = (t[:, k + 1] - t[:, k]) if k + 1 < t.shape[1] else torch.zeros_like(t[:, k])
            if self.evolve is not None and k + 1 < t.shape[1]:
                h = _rk4_gap(self.evolve, h, gap)
            h = self.cell(torch.cat([x[:, k], gap[:, None]], 1), h)
        if self.evolve is not None:  # back from the first observation to the window's start, t = 0
            h = _rk4_gap(self.evolve, h, t[:, 0])
        return self.cell(torch.cat([torch.zeros_like(x[:, 0]), t[:, :1]], 1), h)

    def forward(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.hidden(t, x, mask)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)


def _rk4_gap(net: nn.Module, h: torch.Tensor, gap: torch.Tensor, steps: int = 4) -> torch.Tensor:
    """``h`` evolved by ``dh/dt = -net(h)`` over each row's ``gap`` (backwards in time), RK4."""
    scale = -(gap / steps)[:, None]
    for _ in range(steps):
        k1 = net(h)
        k2 = net(h + 0.5 * scale * k1)
        k3 = net(h + 0.5 * scale * k2)
        k4 = net(h + scale * k3)
        h = h + scale / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return h


def union_times(query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grid, index)``: the sorted distinct times of ``query`` ``(B, Q)`` starting at 0, and each
    query's position in it ``(B, Q)``."""
    grid, index = torch.unique(torch.cat([query.new_zeros(1), query.flatten()]), sorted=True, return_inverse=True)
    return grid, index[1:].reshape(query.shape)


def solve(field: nn.Module, y0: torch.Tensor, query: torch.Tensor, method: str, substep: float) -> torch.Tensor:
    """``y`` at each query time ``(B, Q, S)`` from ``y0`` ``(B, S)`` at t = 0 under ``dy/dt = field(t, y)``:
    one ``odeint`` call over the sorted union of the (non-negative) query times."""
    grid, index = union_times(query)
    if method in FIXED_METHODS:  # outputs between steps by cubic Hermite interpolation
        path = odeint(field, y0, grid, method=method, options={"step_size": substep, "interp": "cubic"})
    else:
        path = odeint(field, y0, grid, method=method, rtol=1e-5, atol=1e-6)                  # (G, B, S)
    return path.permute(1, 0, 2).gather(1, index[..., None].expand(-1, -1, y0.shape[1]))


class LatentODE(Normalised):
    """Encoder, latent field and decoder (see the module docstring); ``log_std`` ``(D,)`` is the
    likelihood's log standard deviation (normalised units), learned or fixed."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, latent: int, enc_hidden: int, encoder: str, width: int,
                 depth: int, activation: str, dec_width: int, method: str, substep: float, time_scale: float,
                 log_std: float, learn_std: bool) -> None:
        super().__init__(mean, std)
        channels = len(mean)
        self.encoder = Encoder(channels, enc_hidden, latent, encoder, time_scale)
        self.field = _Counted(mlp(latent, latent, width, depth, activation), time_scale)
        self.decoder = mlp(latent, channels, dec_width, 1, "tanh")
        self.method, self.substep = method, substep
        self.log_std = nn.Parameter(torch.full((channels,), log_std), requires_grad=learn_std)

    def latent_path(self, z0: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """``z`` at each query time ``(B, Q, L)`` from ``z0`` ``(B, L)`` at t = 0."""
        return solve(self.field, z0, query, self.method, self.substep)

    def forward(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, query: torch.Tensor,
                sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prediction at query (B, Q, D), mu, logvar)``; ``sample``: a reparameterised draw of
        ``z0``, else its mean."""
        mu, logvar = self.encoder(t, x, mask)
        z0 = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decoder(self.latent_path(z0, query)), mu, logvar


class GRUBaseline(Normalised):
    """The recurrent baseline (see the module docstring): the GRU cell steps every ``grid_step``
    seconds from t = 0 (the data's sample spacing; query times lie on that grid), so a trajectory's
    prediction does not depend on the other trajectories of its batch."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, enc_hidden: int, encoder: str, dec_width: int,
                 time_scale: float, grid_step: float, log_std: float, learn_std: bool) -> None:
        super().__init__(mean, std)
        channels = len(mean)
        self.encoder = Encoder(channels, enc_hidden, 1, encoder, time_scale)
        self.step = nn.GRUCell(1, enc_hidden)
        self.decoder = mlp(enc_hidden, channels, dec_width, 1, "tanh")
        self.grid_step, self.time_scale = grid_step, time_scale
        self.log_std = nn.Parameter(torch.full((channels,), log_std), requires_grad=learn_std)

    def forward(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, query: torch.Tensor,
                sample: bool = True) -> tuple[torch.Tensor, None, None]:
        h = self.encoder.hidden(t, x, mask)
        index = torch.round(query / self.grid_step).long()                 # (B, Q) grid points
        gap = h.new_full((h.shape[0], 1), self.grid_step / self.time_scale)
        states = [h]
        for _ in range(int(index.max())):
            h = self.step(gap, h)
            states.append(h)
        path = torch.stack(states, 1)                                      # (B, G, H)
        return self.decoder(path.gather(1, index[..., None].expand(-1, -1, path.shape[2]))), None, None


class _PlanarField(nn.Module):
    """A two-body :class:`VectorField` on planar states ``(..., 4)`` ``[x, y, vx, vy]`` (canonical units),
    run backwards in time when ``sign`` is -1; counts its evaluations (``nfe``)."""

    def __init__(self, field: VectorField) -> None:
        super().__init__()
        self.field, self.sign, self.nfe = field, 1.0, 0

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        zero = torch.zeros_like(y[..., :1])
        dydt = self.field(torch.cat([y[..., :2], zero, y[..., 2:], zero], -1))
        return self.sign * dydt[..., [0, 1, 3, 4]]


class StateODE(Normalised):
    """The state-space baseline (see the module docstring); it integrates in canonical units, the
    normalisation's (``mean``, ``std`` ``(4,)``) inverse."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, width: int, depth: int, activation: str, method: str,
                 substep: float, log_std: float, learn_std: bool) -> None:
        super().__init__(mean, std)
        self.field = _PlanarField(VectorField(TwoBodyConfig(width=width, depth=depth, activation=activation)))
        self.method, self.substep = method, substep
        self.log_std = nn.Parameter(torch.full((4,), log_std), requires_grad=learn_std)

    def forward(self, t: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, query: torch.Tensor,
                sample: bool = True) -> tuple[torch.Tensor, None, None]:
        first = int(torch.nonzero(mask)[0, 0])                 # the first context observation
        y0 = x[:, first] * self.norm_std + self.norm_mean      # canonical units, as observed (noisy)
        rel = query - t[:, first:first + 1]                    # time from it; negative: before it
        path = solve(self.field, y0, rel.clamp(min=0.0), self.method, self.substep)
        if bool((rel < 0).any()):
            self.field.sign = -1.0
            try:
                back = solve(self.field, y0, (-rel).clamp(min=0.0), self.method, self.substep)
            finally:
                self.field.sign = 1.0
            path = torch.where((rel < 0)[..., None], back, path)
        return (path - self.norm_mean) / self.norm_std, None, None


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per row ``(B,)``, in closed form."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(1)
