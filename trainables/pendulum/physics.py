"""The double pendulum: point masses m1, m2 (kg) on massless rods l1, l2 (m), gravity g (m/s^2).

State ``(theta1, theta2, omega1, omega2)``: angles from the downward vertical (rad, not wrapped:
an arm that flips over keeps counting) and angular velocities (rad/s). Arrays of states are
``(..., 4)``; parameters broadcast against the leading dimensions.

Two integrators:

- :func:`integrate_reference`: scipy's DOP853 (or RK45) on the Lagrangian equations of motion,
  tolerances 1e-10 by default: energy is conserved to about 1e-9 relative over tens of seconds.
- :func:`integrate_verlet`: the generalised Stormer-Verlet (velocity Verlet) scheme on the
  Hamiltonian in canonical coordinates ``(theta, p)``. The double pendulum's kinetic energy
  depends on ``theta1 - theta2``, so the Hamiltonian is not separable and plain velocity
  Verlet is not symplectic; the generalised scheme (Hairer, Lubich & Wanner, *Geometric
  Numerical Integration*, eq. VI.3.4) is symplectic and second order, its two implicit
  half-steps solved by a fixed number of fixed-point iterations (so results do not depend on
  how many simulations are integrated together). Its energy error oscillates with no drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

G = 9.81
"""Standard gravity, m/s^2."""


@dataclass(frozen=True)
class Params:
    """Rod lengths l1, l2 (m), masses m1, m2 (kg), gravity g (m/s^2); floats or arrays ``(...,)``."""

    l1: float | np.ndarray = 1.0
    l2: float | np.ndarray = 1.0
    m1: float | np.ndarray = 1.0
    m2: float | np.ndarray = 1.0
    g: float | np.ndarray = G

    def energy_scale(self) -> float | np.ndarray:
        """``g ((m1 + m2) l1 + m2 l2)`` (J): the depth of the potential well, for relative energy errors."""
        return self.g * ((self.m1 + self.m2) * self.l1 + self.m2 * self.l2)


def derivatives(state: np.ndarray, p: Params) -> np.ndarray:
    """d/dt of ``state`` ``(..., 4)`` from the Lagrangian equations of motion -> ``(..., 4)`` rad/s, rad/s^2."""
    th1, th2, w1, w2 = np.moveaxis(state, -1, 0)
    d = th1 - th2
    den = 2 * p.m1 + p.m2 - p.m2 * np.cos(2 * d)
    a1 = (-p.g * (2 * p.m1 + p.m2) * np.sin(th1) - p.m2 * p.g * np.sin(th1 - 2 * th2)
          - 2 * np.sin(d) * p.m2 * (w2 ** 2 * p.l2 + w1 ** 2 * p.l1 * np.cos(d))) / (p.l1 * den)
    a2 = (2 * np.sin(d) * (w1 ** 2 * p.l1 * (p.m1 + p.m2) + p.g * (p.m1 + p.m2) * np.cos(th1)
                           + w2 ** 2 * p.l2 * p.m2 * np.cos(d))) / (p.l2 * den)
    return np.stack([w1, w2, a1, a2], axis=-1)


def energy(state: np.ndarray, p: Params) -> np.ndarray:
    """Total mechanical energy ``(...,)`` J of ``state`` ``(..., 4)``; zero with both arms hanging at rest
    is ``-energy_scale``."""
    th1, th2, w1, w2 = np.moveaxis(state, -1, 0)
    kinetic = (0.5 * (p.m1 + p.m2) * p.l1 ** 2 * w1 ** 2 + 0.5 * p.m2 * p.l2 ** 2 * w2 ** 2
               + p.m2 * p.l1 * p.l2 * w1 * w2 * np.cos(th1 - th2))
    potential = -(p.m1 + p.m2) * p.g * p.l1 * np.cos(th1) - p.m2 * p.g * p.l2 * np.cos(th2)
    return kinetic + potential


def to_momenta(state: np.ndarray, p: Params) -> np.ndarray:
    """Canonical momenta ``(..., 2)`` kg m^2/s of ``state`` ``(..., 4)``: ``p = M(theta) omega``."""
    th1, th2, w1, w2 = np.moveaxis(state, -1, 0)
    c = p.m2 * p.l1 * p.l2 * np.cos(th1 - th2)
    return np.stack([(p.m1 + p.m2) * p.l1 ** 2 * w1 + c * w2, c * w1 + p.m2 * p.l2 ** 2 * w2], axis=-1)


def _dh_dp(q: np.ndarray, mom: np.ndarray, p: Params) -> np.ndarray:
    """dH/dp = M(q)^-1 p = omega, ``(..., 2)``."""
    d = q[..., 0] - q[..., 1]
    det = p.l1 ** 2 * p.l2 ** 2 * p.m2 * (p.m1 + p.m2 * np.sin(d) ** 2)
    c = p.m2 * p.l1 * p.l2 * np.cos(d)
    w1 = (p.m2 * p.l2 ** 2 * mom[..., 0] - c * mom[..., 1]) / det
    w2 = ((p.m1 + p.m2) * p.l1 ** 2 * mom[..., 1] - c * mom[..., 0]) / det
    return np.stack([w1, w2], axis=-1)


def _dh_dq(q: np.ndarray, mom: np.ndarray, p: Params) -> np.ndarray:
    """dH/dq ``(..., 2)``: H = N / (2 D) + V with N, D functions of delta = q1 - q2 (see module docstring)."""
    d = q[..., 0] - q[..., 1]
    p1, p2 = mom[..., 0], mom[..., 1]
    a, b, c = p.m2 * p.l2 ** 2, (p.m1 + p.m2) * p.l1 ** 2, p.m2 * p.l1 * p.l2
    n = a * p1 ** 2 + b * p2 ** 2 - 2 * c * p1 * p2 * np.cos(d)
    den = p.l1 ** 2 * p.l2 ** 2 * p.m2 * (p.m1 + p.m2 * np.sin(d) ** 2)
    dn = 2 * c * p1 * p2 * np.sin(d)
    dden = p.l1 ** 2 * p.l2 ** 2 * p.m2 ** 2 * 2 * np.sin(d) * np.cos(d)
    dt_dd = (dn * den - n * dden) / (2 * den ** 2)
    return np.stack([dt_dd + (p.m1 + p.m2) * p.g * p.l1 * np.sin(q[..., 0]),
                     -dt_dd + p.m2 * p.g * p.l2 * np.sin(q[..., 1])], axis=-1)


def verlet_step(q: np.ndarray, mom: np.ndarray, h: float, p: Params, iterations: int = 8
                ) -> tuple[np.ndarray, np.ndarray]:
    """One generalised Stormer-Verlet step of ``h`` s for ``q``, ``mom`` ``(..., 2)``."""
    half = mom
    for _ in range(iterations):  # p_{n+1/2} = p_n - h/2 dH/dq(q_n, p_{n+1/2})
        half = mom - 0.5 * h * _dh_dq(q, half, p)
    v0 = _dh_dp(q, half, p)
    q1 = q + h * v0
    for _ in range(iterations):  # q_{n+1} = q_n + h/2 (dH/dp(q_n, p_{n+1/2}) + dH/dp(q_{n+1}, p_{n+1/2}))
        q1 = q + 0.5 * h * (v0 + _dh_dp(q1, half, p))
    return q1, half - 0.5 * h * _dh_dq(q1, half, p)


def integrate_verlet(state0: np.ndarray, t: np.ndarray, p: Params, substeps: int = 10) -> np.ndarray:
    """States ``(..., len(t), 4)`` at equally spaced times ``t`` (s) from ``state0`` ``(..., 4)``.

    Takes ``substeps`` Verlet steps of ``(t[1] - t[0]) / substeps`` between samples.
    """
    h = float(t[1] - t[0]) / substeps if len(t) > 1 else 0.0
    q, mom = state0[..., :2].copy(), to_momenta(state0, p)
    out = np.empty(state0.shape[:-1] + (len(t), 4))
    out[..., 0, :] = state0
    for k in range(1, len(t)):
        for _ in range(substeps):
            q, mom = verlet_step(q, mom, h, p)
        out[..., k, :2] = q
        out[..., k, 2:] = _dh_dp(q, mom, p)
    return out


def integrate_reference(state0: np.ndarray, t: np.ndarray, p: Params, method: str = "DOP853",
                        rtol: float = 1e-10, atol: float = 1e-10, batched: bool = False) -> np.ndarray:
    """States ``(len(t), 4)`` of one simulation at times ``t`` (s) with scipy's ``method``.

    With ``batched``, ``state0`` is ``(n, 4)`` and the result ``(n, len(t), 4)``: the n systems
    are integrated as one (shared step size; use for a few trajectories that belong together).
    """
    y0 = np.asarray(state0, float)
    shape = y0.shape

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        return derivatives(y.reshape(shape), p).reshape(-1)

    sol = solve_ivp(rhs, (float(t[0]), float(t[-1])), y0.reshape(-1), method=method, t_eval=t, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"double-pendulum integration failed: {sol.message}")
    out = sol.y.T.reshape(len(t), *shape)
    return np.moveaxis(out, 0, -2) if batched else out


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles mapped to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi
