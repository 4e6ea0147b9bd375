"""World models with different inductive biases, behind one interface: ``rollout``.

Every model maps a start state ``s0`` ``(B, d)`` (``[q, v]``), actions ``(B, T)`` and the
sequence parameters ``(B, k)`` to the next T states ``(B, T, d)`` at step ``dt`` (s), in
physical units. Inputs to every network are normalised (state and parameter statistics of the
training split, buffers of the model); actions enter through an embedding.

=====================  =======================================================  ============
model                  dynamics                                                  time
=====================  =======================================================  ============
``jump``               s' = s + f(s, a) (residual MLP)                          discrete
``lstm``               an LSTM over (s, a), carrying its state; s' = s + head(h)  discrete
``first_order_ode``    ds/dt = f(s, a)                                           continuous
``newtonian``          dq/dt = v, dv/dt = f(q, v, a) - gamma v (gamma >= 0)      continuous
``velocity``           dq/dt = g(q, a), v := g(q, a) (a learned velocity field)  continuous
``port_hamiltonian``   dq/dt = dH/dv, dv/dt = -dH/dq - D dH/dv + B(q, a)        continuous
                       (learned H(q, v), dissipation D = diag softplus >= 0,
                       input port B; derivatives by autograd)
=====================  =======================================================  ============

Continuous models integrate each step with torchdiffeq's ``odeint`` (``method`` rk4, euler,
midpoint, dopri5, ...; fixed-step methods take ``substeps`` steps per sample) or ``leapfrog``
(kick-drift-kick on the q/v split: symplectic when the field is separable, e.g.
``port_hamiltonian`` with ``separable: true``, where H = T(v) + V(q)). A continuous model
evaluated at another dt simply integrates over it; a discrete one cannot (see ``continuous``).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchdiffeq import odeint

from trainables.common.nn import mlp

MODELS = ("jump", "lstm", "first_order_ode", "newtonian", "velocity", "port_hamiltonian")
CONTINUOUS = ("first_order_ode", "newtonian", "velocity", "port_hamiltonian")
METHODS = ("rk4", "euler", "midpoint", "dopri5", "leapfrog")
SPLIT_MODELS = ("newtonian", "port_hamiltonian")
"""Models whose field splits into dq/dt and dv/dt (the ones leapfrog applies to)."""


def energy_gradient(energy: Callable[[torch.Tensor], torch.Tensor], s: torch.Tensor, create_graph: bool
                    ) -> torch.Tensor:
    """dH/ds ``(B, d)`` of a scalar field ``energy`` ``(B, d) -> (B,)`` by autograd (also under no_grad)."""
    with torch.enable_grad():
        x = s if s.requires_grad else s.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return grad


class WorldModel(nn.Module):
    """Shared parts: normalisation buffers, action embedding, integration. Subclasses define
    ``field`` (continuous) or ``jump`` (discrete)."""

    continuous = True

    def __init__(self, dim: int, n_actions: int, n_params: int, width: int, depth: int, activation: str,
                 embed: int = 8, method: str = "rk4", substeps: int = 2) -> None:
        super().__init__()
        self.dim, self.q_dim, self.method, self.substeps = dim, dim // 2, method, substeps
        self.embedding = nn.Embedding(n_actions, embed)
        self.width, self.depth, self.activation, self.embed, self.n_params = width, depth, activation, embed, n_params
        for name, size in (("s_mean", dim), ("s_std", dim), ("p_mean", n_params), ("p_std", n_params),
                           ("rate", dim), ("jump_scale", dim)):
            self.register_buffer(name, torch.ones(size) if name not in ("s_mean", "p_mean") else torch.zeros(size))

    def set_statistics(self, states: torch.Tensor, params: torch.Tensor, dt: float) -> None:
        """Fit the buffers: states ``(n, T + 1, d)``, params ``(n, k)`` of the training split."""
        def safe(std: torch.Tensor) -> torch.Tensor:
            return torch.where(std > 1e-8, std, torch.ones_like(std))

        flat = states.reshape(-1, self.dim)
        delta = (states[:, 1:] - states[:, :-1]).reshape(-1, self.dim)
        self.s_mean.copy_(flat.mean(0))
        self.s_std.copy_(safe(flat.std(0)))
        if self.n_params:
            self.p_mean.copy_(params.mean(0))
            self.p_std.copy_(safe(params.std(0) if len(params) > 1 else torch.ones(self.n_params)))
        self.jump_scale.copy_(safe(delta.std(0)))
        self.rate.copy_(safe(delta.std(0) / dt))

    def inputs(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None, use_state: slice = slice(None)
               ) -> torch.Tensor:
        """Network input: normalised state (or a part of it), action embedding, normalised params."""
        parts = [((s - self.s_mean) / self.s_std)[:, use_state], self.embedding(a)]
        if p is not None and self.n_params:
            parts.append((p - self.p_mean) / self.p_std)
        return torch.cat(parts, -1)

    def in_dim(self, state_dims: int) -> int:
        return state_dims + self.embed + self.n_params

    def field(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def advance(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None, dt: float) -> torch.Tensor:
        """The state after ``dt`` s with action ``a`` held."""
        if self.method == "leapfrog":
            h, q = dt / self.substeps, self.q_dim
            for _ in range(self.substeps):
                v_half = s[:, q:] + 0.5 * h * self.field(s, a, p)[:, q:]
                moved = torch.cat([s[:, :q], v_half], 1)
                q_new = s[:, :q] + h * self.field(moved, a, p)[:, :q]
                half = torch.cat([q_new, v_half], 1)
                s = torch.cat([q_new, v_half + 0.5 * h * self.field(half, a, p)[:, q:]], 1)
            return s
        t = torch.tensor([0.0, dt], dtype=s.dtype, device=s.device)
        options = {"step_size": dt / self.substeps} if self.method in ("rk4", "euler", "midpoint") else None
        return odeint(lambda _t, y: self.field(y, a, p), s, t, method=self.method, options=options,
                      rtol=1e-5, atol=1e-7)[-1]

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, params: torch.Tensor | None, dt: float) -> torch.Tensor:
        out, s = [], s0
        for t in range(actions.shape[1]):
            s = self.advance(s, actions[:, t], params, dt)
            out.append(s)
        return torch.stack(out, 1)


class Jump(WorldModel):
    continuous = False

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.net = mlp(self.in_dim(self.dim), self.dim, self.width, self.depth, self.activation)

    def advance(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None, dt: float) -> torch.Tensor:
        return s + self.net(self.inputs(s, a, p)) * self.jump_scale


class LSTMModel(WorldModel):
    continuous = False

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.lstm = nn.LSTM(self.in_dim(self.dim), self.width, num_layers=self.depth, batch_first=True)
        self.head = nn.Linear(self.width, self.dim)

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, params: torch.Tensor | None, dt: float) -> torch.Tensor:
        out, s, hidden = [], s0, None
        for t in range(actions.shape[1]):
            h, hidden = self.lstm(self.inputs(s, actions[:, t], params)[:, None], hidden)
            s = s + self.head(h[:, 0]) * self.jump_scale
            out.append(s)
        return torch.stack(out, 1)


class FirstOrderODE(WorldModel):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.net = mlp(self.in_dim(self.dim), self.dim, self.width, self.depth, self.activation)

    def field(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        return self.net(self.inputs(s, a, p)) * self.rate


class Newtonian(WorldModel):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.net = mlp(self.in_dim(self.dim), self.q_dim, self.width, self.depth, self.activation)
        self.gamma_raw = nn.Parameter(torch.full((self.q_dim,), -6.0))  # softplus(-6) ~ 0.0025: starts frictionless

    def field(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        q = self.q_dim
        force = self.net(self.inputs(s, a, p)) * self.rate[q:]
        return torch.cat([s[:, q:], force - nn.functional.softplus(self.gamma_raw) * s[:, q:]], 1)


class Velocity(WorldModel):
    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.net = mlp(self.in_dim(self.q_dim), self.q_dim, self.width, self.depth, self.activation)

    def velocity(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        return self.net(self.inputs(s, a, p, slice(0, self.q_dim))) * self.rate[:self.q_dim]

    def field(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([self.velocity(s, a, p), torch.zeros_like(s[:, self.q_dim:])], 1)

    def advance(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None, dt: float) -> torch.Tensor:
        moved = super().advance(s, a, p, dt)
        return torch.cat([moved[:, :self.q_dim], self.velocity(moved, a, p)], 1)  # v is the field at the new q


class PortHamiltonian(WorldModel):
    def __init__(self, *args, separable: bool = False, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        q, extra = self.q_dim, self.n_params
        self.separable = separable
        if separable:  # H = T(v) + V(q)
            self.kinetic = mlp(q + extra, 1, self.width, self.depth, self.activation)
            self.potential = mlp(q + extra, 1, self.width, self.depth, self.activation)
        else:
            self.hamiltonian = mlp(self.dim + extra, 1, self.width, self.depth, self.activation)
        self.port = mlp(self.in_dim(q), q, self.width, 1, self.activation)
        self.dissipation_raw = nn.Parameter(torch.full((q,), -6.0))
        self.log_gain = nn.Parameter(torch.zeros(()))
        self.register_buffer("h_scale", torch.ones(()))

    def set_statistics(self, states: torch.Tensor, params: torch.Tensor, dt: float) -> None:
        """Also sets the energy unit: with H = h_scale * net(normalised state), dq/dt = dH/dv and
        dv/dt = -dH/dq have the data's rates when h_scale ~ rate_q std_v ~ rate_v std_q."""
        super().set_statistics(states, params, dt)
        q = self.q_dim
        self.h_scale.copy_(torch.sqrt(self.rate[:q] * self.s_std[q:] * self.rate[q:] * self.s_std[:q]).mean())

    def energy(self, s: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        """The learned H ``(B,)`` in the data's units (one scalar scale keeps the dynamics Hamiltonian)."""
        z = (s - self.s_mean) / self.s_std
        extra = [(p - self.p_mean) / self.p_std] if p is not None and self.n_params else []
        gain = self.h_scale * torch.exp(self.log_gain)
        if self.separable:
            q = self.q_dim
            net = self.kinetic(torch.cat([z[:, q:], *extra], 1)) + self.potential(torch.cat([z[:, :q], *extra], 1))
        else:
            net = self.hamiltonian(torch.cat([z, *extra], 1))
        return gain * net[:, 0]

    def field(self, s: torch.Tensor, a: torch.Tensor, p: torch.Tensor | None) -> torch.Tensor:
        q = self.q_dim
        grad = energy_gradient(lambda x: self.energy(x, p), s, self.training)
        dh_dq, dh_dv = grad[:, :q], grad[:, q:]
        push = self.port(self.inputs(s, a, p, slice(0, q))) * self.rate[q:]
        return torch.cat([dh_dv, -dh_dq - nn.functional.softplus(self.dissipation_raw) * dh_dv + push], 1)


CLASSES: dict[str, type[WorldModel]] = {"jump": Jump, "lstm": LSTMModel, "first_order_ode": FirstOrderODE,
                                        "newtonian": Newtonian, "velocity": Velocity,
                                        "port_hamiltonian": PortHamiltonian}


def build(model: str, dim: int, n_actions: int, n_params: int, width: int, depth: int, activation: str,
          method: str, substeps: int, separable: bool = False) -> WorldModel:
    kwargs = {"method": method, "substeps": substeps}
    if model == "port_hamiltonian":
        kwargs["separable"] = separable  # type: ignore[assignment]
    return CLASSES[model](dim, n_actions, n_params, width, depth, activation, **kwargs)  # type: ignore[arg-type]
