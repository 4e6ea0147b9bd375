"""Planar N-body systems (G = 1) and the velocity-Verlet step, for numpy and torch alike.

A state is positions ``q`` ``(N, 2)`` and velocities ``v`` ``(N, 2)`` with masses ``m`` ``(N,)``;
a mass may be zero (a test particle: it feels the others, nobody feels it). The functions use
only arithmetic, ``sqrt`` and ``where`` of the array module ``xp`` (``numpy`` or ``torch``), so
the training loop differentiates through a step (torch, float64) and the long evaluation
integrations run in numpy with the very same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor


def _xp(a: Array) -> Any:
    if isinstance(a, np.ndarray):
        return np
    import torch

    return torch


def accelerations(q: Array, m: Array) -> Array:
    """``(..., N, 2)``: a_i = sum_j m_j (q_j - q_i) / |q_j - q_i|^3 (leading batch dimensions allowed)."""
    xp = _xp(q)
    diff = q[..., None, :, :] - q[..., :, None, :]                # (..., i, j, 2): q_j - q_i
    r2 = (diff ** 2).sum(-1)
    safe = xp.where(r2 > 0, r2, xp.ones_like(r2))
    inv3 = xp.where(r2 > 0, safe ** -1.5, xp.zeros_like(r2))      # no self-interaction, no 0/0
    return (m[None, :, None] * diff * inv3[..., None]).sum(-2)


def energy(q: Array, v: Array, m: Array) -> Array:
    """Total energy ``(...)``: sum m v^2 / 2 - sum_{i<j} m_i m_j / r_ij."""
    xp = _xp(q)
    diff = q[..., None, :, :] - q[..., :, None, :]
    r2 = (diff ** 2).sum(-1)
    safe = xp.where(r2 > 0, r2, xp.ones_like(r2))
    pair = xp.where(r2 > 0, m[:, None] * m[None, :] / xp.sqrt(safe), xp.zeros_like(r2))
    return 0.5 * (m * (v ** 2).sum(-1)).sum(-1) - 0.5 * pair.sum((-2, -1))


def verlet(q: Array, v: Array, m: Array, dt: Array | float) -> tuple[Array, Array]:
    """One velocity-Verlet (kick-drift-kick) step of ``dt`` (time units; a scalar, or ``(...,)`` per batch
    entry for states ``(..., N, 2)``)."""
    if not isinstance(dt, float) and getattr(dt, "ndim", 0) > 0:
        dt = dt[..., None, None]
    half = v + 0.5 * dt * accelerations(q, m)
    q_new = q + dt * half
    return q_new, half + 0.5 * dt * accelerations(q_new, m)


@dataclass(frozen=True)
class System:
    """Initial positions, velocities ``(N, 2)``, masses ``(N,)``, and the orbital period used to count
    steps per orbit (the binary's period for two bodies; the inner binary's for hierarchical triples)."""

    q: np.ndarray
    v: np.ndarray
    m: np.ndarray
    period: float


def kepler_pair(e: float, a: float = 1.0, m1: float = 1.0, m2: float = 1e-3) -> System:
    """Two bodies on an orbit of eccentricity ``e`` and semi-major axis ``a``, starting at apocentre,
    centre of mass at rest at the origin."""
    mu = m1 + m2
    r, speed = a * (1 + e), math.sqrt(mu / a * (1 - e) / (1 + e))            # vis-viva at apocentre
    rel_q, rel_v = np.array([r, 0.0]), np.array([0.0, speed])
    q = np.stack([-m2 / mu * rel_q, m1 / mu * rel_q])
    v = np.stack([-m2 / mu * rel_v, m1 / mu * rel_v])
    return System(q, v, np.array([m1, m2]), 2 * math.pi * math.sqrt(a ** 3 / mu))


def hierarchical_triple(e_inner: float = 0.5, m3: float = 0.1, a_outer: float = 5.0) -> System:
    """An eccentric inner pair (masses 1 and 1e-3, a = 1) and a third body of mass ``m3`` (may be 0)
    on a circular orbit of radius ``a_outer`` about them."""
    inner = kepler_pair(e_inner)
    m_in = float(inner.m.sum())
    speed = math.sqrt((m_in + m3) / a_outer)
    q3, v3 = np.array([[0.0, a_outer]]), np.array([[-speed, 0.0]])
    q, v, m = np.concatenate([inner.q, q3]), np.concatenate([inner.v, v3]), np.append(inner.m, m3)
    total = max(float(m.sum()), 1e-300)
    q, v = q - (m[:, None] * q).sum(0) / total, v - (m[:, None] * v).sum(0) / total
    return System(q, v, m, inner.period)


def r32_dt(q: np.ndarray, m: np.ndarray, eta: float) -> float:
    """The classical adaptive step: ``eta * min_{i<j} sqrt(r_ij^3 / (m_i + m_j))`` (pairs with mass)."""
    n = len(q)
    best = math.inf
    for i in range(n):
        for j in range(i + 1, n):
            mass = m[i] + m[j]
            if mass > 0:
                best = min(best, math.sqrt(float(((q[i] - q[j]) ** 2).sum()) ** 3 / mass))
    return eta * best
