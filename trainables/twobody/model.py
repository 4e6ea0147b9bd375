"""The neural vector field dy/dt = head(MLP(feature(y)), y) and its batched integration.

All tensors are in canonical units (DU = R_E, TU = sqrt(DU^3/mu), mu = 1).

Batching segments of different time spans: segment ``b`` is sampled at t_b + k dt_b,
k = 0..L-1 (uniform in time, since samples are uniform in mean anomaly). With s = (t - t_b)/dt_b
its states obey dy/ds = dt_b f(y) on the shared grid s = 0, 1, ..., L-1, so the whole batch is
ONE odeint call over the shared grid, exactly (no interpolation, no padding).
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from trainables.common.errors import SolverError
from trainables.common.nn import mlp
from trainables.common.ode import IntegrationError, adaptive_solver, worst_rms

from .config import TwoBodyConfig
from .features import FEATURES, feature_dim
from .heads import HEAD_DIMS, HeadModule, planar


class VectorField(nn.Module):
    """f(y) = head(MLP(feature(y)), y): ``(..., 6) -> (..., 6)``, canonical units."""

    def __init__(self, cfg: TwoBodyConfig) -> None:
        super().__init__()
        self.feature = FEATURES[cfg.feature]
        self.harmonic_order = cfg.harmonic_order
        self.head = HeadModule(cfg.head, cfg.activation, cfg.magnitude_bound, cfg.magnitude_rescale)
        self.planar_constraint = cfg.planar_constraint
        self.net = mlp(feature_dim(cfg.feature, cfg.harmonic_order), HEAD_DIMS[cfg.head], cfg.width,
                       cfg.depth, cfg.activation, cfg.final_activation)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        dydt = self.head(self.net(self.feature(y, self.harmonic_order)), y)
        return planar(dydt) if self.planar_constraint else dydt

    def acceleration(self, y: torch.Tensor) -> torch.Tensor:
        """The learned acceleration ``(..., 3)`` at states ``y (..., 6)``."""
        return self.forward(y)[..., 3:]


class ScaledField(nn.Module):
    """dy/ds = dt_b f(y) for a batch ``y (B, 6)`` with per-segment time steps ``dt (B,)`` (or
    ``y (N, B, 6)``, ``dt (N, B)``: N replicates).

    Counts its evaluations in ``nfe`` (reset by :func:`integrate`).
    """

    def __init__(self, field: VectorField, dt: torch.Tensor) -> None:
        super().__init__()
        self.field = field
        self.dt = dt[..., None]
        self.nfe = 0

    def forward(self, s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.dt * self.field(y)


def integrate(field: nn.Module, y0: torch.Tensor, dt: torch.Tensor, n_points: int, cfg: TwoBodyConfig,
              step: int | None = None) -> tuple[torch.Tensor, int]:
    """Integrate a batch of segments in one solver call.

    Args:
        field: a :class:`VectorField`, or N of them as one
            (:class:`~trainables.common.replicates.Replicated`).
        y0: initial states ``(B, 6)``, or ``(N, B, 6)`` for N replicates (each with its own
            error norm: the shared step meets the tolerance for every replicate);
        dt: sample spacing of each segment ``(B,)`` (``(N, B)``) TU;
        n_points: samples per segment L (the grid s = 0..L-1).
    Returns:
        ``(states (B, L, 6), function evaluations)`` (``(N, B, L, 6)`` for replicates).
    ``solver: dopri5`` and ``tsit5`` use the lean batched solvers of :mod:`trainables.common.ode`;
    ``torchdiffeq_dopri5``, ``rk4`` (fixed step 1/``rk4_substeps`` of a sample) and
    ``adjoint: true`` (dopri5) use torchdiffeq.

    Raises:
        SolverError: step-size underflow, more than ``cfg.max_solver_steps`` steps, or a
            non-finite state.
    """
    f = ScaledField(field, dt)
    if cfg.solver in ("dopri5", "tsit5") and not cfg.adjoint:
        try:
            norm = {"norm": worst_rms} if y0.dim() == 3 else {}
            return adaptive_solver(cfg.solver)(lambda y: f(None, y), y0, n_points, cfg.rtol, cfg.atol,
                                               cfg.max_solver_steps, **norm)
        except IntegrationError as err:
            raise SolverError(str(err)[:200], step) from None
    grid = torch.arange(n_points, dtype=y0.dtype, device=y0.device)
    if cfg.solver == "rk4":
        kwargs = {"method": "rk4", "options": {"step_size": 1.0 / cfg.rk4_substeps}}
    else:  # torchdiffeq's own dopri5 (also for the adjoint)
        kwargs = {"method": "dopri5", "rtol": cfg.rtol, "atol": cfg.atol,
                  "options": {"max_num_steps": cfg.max_solver_steps}}
    solve = odeint_adjoint if cfg.adjoint else odeint
    try:
        ys = solve(f, y0, grid, **kwargs)
    except AssertionError as err:  # torchdiffeq signals solver failures with assertions
        raise SolverError(str(err).split(":")[0][:200], step) from None
    return ys.movedim(0, -2), f.nfe
