"""The visual world model: a beta-VAE with spatial latents and a convolutional predictor.

Shapes (``B`` batch, ``K`` context frames, ``C`` image channels, ``S`` frame size, ``L`` latent
channels, ``g = S / 8`` the latent grid, ``A`` action-embedding channels):

- :class:`Encoder`: the first ``K`` frames, channel-concatenated ``(B, K C, S, S)`` -> ``mu``,
  ``logvar`` ``(B, L, g, g)`` (three stride-2 convolutions);
- :class:`StateTransform`: a sample ``z`` ``(B, L, g, g)`` -> phase-space state ``s = (q, p)``,
  each half the channels ``(B, L / 2, g, g)``;
- :class:`Decoder`: ``q`` -> 1x1 convolution expand -> (residual block, 2x upsampling) x 3 ->
  frame ``(B, C, S, S)`` (pixel values, [0, 1] outside training);
- actions: an embedding of each discrete action, broadcast over the grid ``(B, A, g, g)``; action 0
  (no forcing, in every env) is the zero map, so without forcing the Hamiltonian predictor is autonomous;
- a predictor (:data:`PREDICTORS`) rolls ``s`` forward one sample (``dt`` s) under an action map.

Predictors (all ``step(s, a, dt) -> s``; the continuous ones integrate in physical time, so a
rollout at another ``dt`` is meaningful):

- ``spatial_jump``: ``s + ConvNet(s, a)``;
- ``spatial_lstm``: a ConvLSTM over ``(s, a)`` whose hidden state gives the increment of ``s``;
- ``spatial_ode``: ``ds/dt = ConvNet(s, a)``, integrated with torchdiffeq's ``odeint``;
- ``spatial_newtonian``: ``dq/dt = p``, ``dp/dt = ConvNet(q, p, a) - gamma p`` (``gamma >= 0``
  learned);
- ``spatial_hamiltonian``: separable ``H = T(p) + V(q)`` from convolutional energy networks
  (summed over the grid), ``dq/dt = dT/dp``, ``dp/dt = -dV/dq + F(a)`` with forces by autograd;
  ``method: leapfrog`` integrates it symplectically; :meth:`SpatialHamiltonian.energy` gives
  ``H(s)`` for monitoring.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchdiffeq import odeint

from trainables.common.nn import ACTIVATIONS

ACTION_CHANNELS = 4
INITIAL_LOGVAR = -4.0
"""The encoder's initial log-variance (its bias): the posterior starts narrow."""
ODE_METHODS = ("rk4", "midpoint", "euler")
"""torchdiffeq fixed-step methods the continuous predictors accept (``substeps`` steps per sample)."""
METHODS = (*ODE_METHODS, "leapfrog")
CONTINUOUS = ("spatial_ode", "spatial_newtonian", "spatial_hamiltonian")


def _act() -> nn.Module:
    """The encoder's, state transform's and decoder's activation: a leaky ReLU, so no unit dies on
    the mostly blank frames (dead ReLUs leave the decoder stuck drawing the background)."""
    return nn.LeakyReLU(0.1)


def conv_net(c_in: int, c_out: int, hidden: int, depth: int, activation: str) -> nn.Sequential:
    """``depth`` 3x3 convolutions of ``hidden`` channels with ``activation``, then a 3x3 to ``c_out``;
    the grid size is kept (padding 1)."""
    layers: list[nn.Module] = []
    c = c_in
    for _ in range(depth):
        layers += [nn.Conv2d(c, hidden, 3, padding=1), ACTIVATIONS[activation]()]
        c = hidden
    return nn.Sequential(*layers, nn.Conv2d(c, c_out, 3, padding=1))


class Encoder(nn.Module):
    """``(B, K C, S, S)`` frames -> ``mu, logvar`` ``(B, L, S/8, S/8)``; channels ``hidden / 4`` at
    full size, doubling with each of three stride-2 convolutions up to ``hidden``."""

    def __init__(self, c_in: int, latent: int, hidden: int) -> None:
        super().__init__()
        widths = [max(4, hidden // 4), max(4, hidden // 2), hidden, hidden]
        layers: list[nn.Module] = [nn.Conv2d(c_in, widths[0], 3, padding=1), _act()]
        for c_from, c_to in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_from, c_to, 4, stride=2, padding=1), _act()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(hidden, 2 * latent, 3, padding=1)
        with torch.no_grad():  # start with a narrow posterior (std 0.14): sampling noise would
            self.head.bias[latent:] = INITIAL_LOGVAR  # drown the frames' signal and stall learning

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)


class StateTransform(nn.Module):
    """A latent sample ``(B, L, g, g)`` -> phase-space state ``(B, L, g, g)`` (``q`` then ``p``)."""

    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(latent, hidden, 3, padding=1), _act(),
                                 nn.Conv2d(hidden, latent, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.net = nn.Sequential(_act(), nn.Conv2d(c, c, 3, padding=1), _act(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class Decoder(nn.Module):
    """``q`` ``(B, L/2, g, g)`` -> frame ``(B, C, 8 g, 8 g)``: a 1x1 expand to ``hidden`` channels,
    then three times (residual block, 2x nearest upsampling, 3x3 convolution), the channels going
    ``hidden, hidden / 2, hidden / 4``, then a 3x3 to ``C``. The output is linear (no sigmoid: a saturated
    sigmoid stalls learning at the blank-background frame); :meth:`VisualWorldModel.decode`
    clips it to [0, 1] outside training."""

    def __init__(self, q_channels: int, c_out: int, hidden: int) -> None:
        super().__init__()
        widths = [hidden, hidden, max(4, hidden // 2), max(4, hidden // 4)]
        layers: list[nn.Module] = [nn.Conv2d(q_channels, hidden, 1)]
        for c_from, c_to in zip(widths[:-1], widths[1:]):
            layers += [_Residual(c_from), nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(c_from, c_to, 3, padding=1)]
        self.body = nn.Sequential(*layers, _act(), nn.Conv2d(widths[-1], c_out, 3, padding=1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return self.body(q)


class Predictor(nn.Module):
    """One step of the latent dynamics; ``reset(s)`` starts a rollout (recurrent state)."""

    continuous = False

    def reset(self, s: torch.Tensor) -> None:
        """Start a rollout from ``s`` (recurrent predictors clear their hidden state)."""

    def step(self, s: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
        raise NotImplementedError


class SpatialJump(Predictor):
    def __init__(self, latent: int, hidden: int, depth: int, activation: str) -> None:
        super().__init__()
        self.net = conv_net(latent + ACTION_CHANNELS, latent, hidden, depth, activation)

    def step(self, s: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
        return s + self.net(torch.cat([s, a], 1))


class SpatialLSTM(Predictor):
    """A ConvLSTM cell over ``(s, a)``; ``s`` moves by a 1x1 readout of the hidden state."""

    def __init__(self, latent: int, hidden: int, depth: int, activation: str) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(latent + ACTION_CHANNELS + hidden, 4 * hidden, 3, padding=1)
        self.out = nn.Conv2d(hidden, latent, 1)
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None

    def reset(self, s: torch.Tensor) -> None:
        zeros = s.new_zeros(s.shape[0], self.hidden, *s.shape[2:])
        self.state = (zeros, zeros)

    def step(self, s: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
        if self.state is None:
            self.reset(s)
        h, c = self.state  # type: ignore[misc]
        i, f, o, g = self.gates(torch.cat([s, a, h], 1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        self.state = (h, c)
        return s + self.out(h)


class _Continuous(Predictor):
    """A predictor with a field ``ds/dt = field(s, a)`` integrated by ``odeint`` over one sample."""

    continuous = True

    def __init__(self, method: str, substeps: int) -> None:
        super().__init__()
        self.method, self.substeps = method, substeps

    def field(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def step(self, s: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
        t = torch.tensor([0.0, dt], dtype=s.dtype, device=s.device)
        return odeint(lambda _t, y: self.field(y, a), s, t, method=self.method,
                      options={"step_size": dt / self.substeps})[-1]


class SpatialODE(_Continuous):
    def __init__(self, latent: int, hidden: int, depth: int, activation: str, method: str, substeps: int) -> None:
        super().__init__(method, substeps)
        self.net = conv_net(latent + ACTION_CHANNELS, latent, hidden, depth, activation)

    def field(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s, a], 1))


class SpatialNewtonian(_Continuous):
    def __init__(self, latent: int, hidden: int, depth: int, activation: str, method: str, substeps: int) -> None:
        super().__init__(method, substeps)
        self.force = conv_net(latent + ACTION_CHANNELS, latent // 2, hidden, depth, activation)
        self.damping = nn.Parameter(torch.tensor(-3.0))  # gamma = softplus(-3) = 0.05 at the start

    def field(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        q, p = s.chunk(2, dim=1)
        gamma = nn.functional.softplus(self.damping)
        return torch.cat([p, self.force(torch.cat([q, p, a], 1)) - gamma * p], 1)


class _Energy(nn.Module):
    """A scalar energy per sample: a ConvNet's output summed over channels and grid, ``(B,)``."""

    def __init__(self, c_in: int, hidden: int, depth: int, activation: str) -> None:
        super().__init__()
        self.net = conv_net(c_in, 1, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).sum((1, 2, 3))


class SpatialHamiltonian(_Continuous):
    """``H(q, p) = T(p) + V(q)``; ``dq/dt = dT/dp``, ``dp/dt = -dV/dq + F(a)``."""

    def __init__(self, latent: int, hidden: int, depth: int, activation: str, method: str, substeps: int) -> None:
        super().__init__(method, substeps)
        self.kinetic = _Energy(latent // 2, hidden, depth, activation)
        self.potential = _Energy(latent // 2, hidden, depth, activation)
        self.actuation = nn.Conv2d(ACTION_CHANNELS, latent // 2, 1, bias=False)  # action 0: no force

    def _grad(self, energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``d energy / d x`` (kept in the graph while training, so the energy nets learn through it)."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            return torch.autograd.grad(energy(x).sum(), x, create_graph=self.training)[0]

    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """The learned ``H(s)`` ``(B,)`` (arbitrary offset)."""
        q, p = s.chunk(2, dim=1)
        return self.kinetic(p) + self.potential(q)

    def field(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        q, p = s.chunk(2, dim=1)
        return torch.cat([self._grad(self.kinetic, p), self.actuation(a) - self._grad(self.potential, q)], 1)

    def step(self, s: torch.Tensor, a: torch.Tensor, dt: float) -> torch.Tensor:
        if self.method != "leapfrog":
            return super().step(s, a, dt)
        q, p = s.chunk(2, dim=1)
        h, force = dt / self.substeps, self.actuation(a)
        for _ in range(self.substeps):  # kick-drift-kick: symplectic, time-reversible
            p = p + 0.5 * h * (force - self._grad(self.potential, q))
            q = q + h * self._grad(self.kinetic, p)
            p = p + 0.5 * h * (force - self._grad(self.potential, q))
        return torch.cat([q, p], 1)


PREDICTORS = ("spatial_jump", "spatial_lstm", "spatial_ode", "spatial_newtonian", "spatial_hamiltonian")


def build_predictor(name: str, latent: int, hidden: int, depth: int, activation: str, method: str,
                    substeps: int) -> Predictor:
    if name == "spatial_jump":
        return SpatialJump(latent, hidden, depth, activation)
    if name == "spatial_lstm":
        return SpatialLSTM(latent, hidden, depth, activation)
    cls = {"spatial_ode": SpatialODE, "spatial_newtonian": SpatialNewtonian,
           "spatial_hamiltonian": SpatialHamiltonian}[name]
    return cls(latent, hidden, depth, activation, method, substeps)


class VisualWorldModel(nn.Module):
    """Encoder, state transform, decoder, action embedding and predictor (see the module docstring).

    The parts are grouped for freezing and for starting from another run's checkpoint:
    :data:`PARTS` maps ``encoder``, ``decoder``, ``predictor`` to their attribute names.
    """

    def __init__(self, channels: int, context: int, latent: int, hidden: int, n_actions: int, predictor: Predictor
                 ) -> None:
        super().__init__()
        self.context = context
        self.encoder = Encoder(context * channels, latent, hidden)
        self.transform = StateTransform(latent, hidden)
        self.decoder = Decoder(latent // 2, channels, hidden)
        self.actions = nn.Embedding(n_actions, ACTION_CHANNELS, padding_idx=0)  # action 0 (no forcing): zeros
        self.predictor = predictor

    def encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``(B, K, C, S, S)`` -> ``mu, logvar`` ``(B, L, g, g)``."""
        return self.encoder(frames.flatten(1, 2))

    def state(self, z: torch.Tensor) -> torch.Tensor:
        return self.transform(z)

    def decode(self, s: torch.Tensor) -> torch.Tensor:
        """States ``(..., L, g, g)`` -> frames ``(..., C, S, S)`` (from ``q``, the first half)."""
        lead = s.shape[:-3]
        q = s.flatten(0, len(lead) - 1) if lead else s[None]
        q = q[:, : q.shape[1] // 2]
        out = self.decoder(q)
        if not self.training:
            out = out.clamp(0.0, 1.0)
        return out.reshape(*lead, *out.shape[1:]) if lead else out[0]

    def action_map(self, actions: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Actions ``(B,)`` -> ``(B, A, g, g)``."""
        return self.actions(actions)[:, :, None, None].expand(-1, -1, *grid)

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, dt: float) -> torch.Tensor:
        """States ``(B, T, L, g, g)`` after each of ``actions`` ``(B, T)`` from ``s0`` ``(B, L, g, g)``."""
        self.predictor.reset(s0)
        out, s = [], s0
        for t in range(actions.shape[1]):
            s = self.predictor.step(s, self.action_map(actions[:, t], s0.shape[2:]), dt)
            out.append(s)
        return torch.stack(out, 1)


PARTS = {"encoder": ("encoder", "transform"), "decoder": ("decoder",), "predictor": ("predictor", "actions")}
"""Groups of the model's parts, for ``freeze`` and ``init_parts``."""
