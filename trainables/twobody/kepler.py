"""Exact two-body (Kepler) propagation, vectorised over orbits.

Elements are classical: semi-major axis ``a`` (km), eccentricity ``e`` (elliptic, 0 <= e < 1),
inclination ``i``, right ascension of the ascending node ``raan``, argument of perigee
``argp`` and initial true anomaly ``nu0`` (all radians). Kepler's equation M = E - e sin E is
solved by Newton's method to machine precision.
"""

from __future__ import annotations

import numpy as np

from .constants import MU_EARTH, SAMPLES_PER_ORBIT


def period(a: np.ndarray | float, mu: float = MU_EARTH) -> np.ndarray:
    """Orbital period T = 2 pi sqrt(a^3 / mu), s, for semi-major axes ``a`` in km."""
    return 2.0 * np.pi * np.sqrt(np.asarray(a, dtype=np.float64) ** 3 / mu)


def true_to_mean_anomaly(nu: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Mean anomaly M (rad) of true anomaly ``nu`` (rad) for eccentricity ``e``; same shapes."""
    E = 2.0 * np.arctan2(np.sqrt(1.0 - e) * np.sin(nu / 2.0), np.sqrt(1.0 + e) * np.cos(nu / 2.0))
    return E - e * np.sin(E)


def solve_kepler(M: np.ndarray, e: np.ndarray, tol: float = 1e-15, max_iter: int = 60) -> np.ndarray:
    """Eccentric anomaly E (rad) with E - e sin E = M, by Newton's method.

    Args:
        M: mean anomalies, rad, any shape.
        e: eccentricities in [0, 1), broadcastable to ``M``.
    Returns:
        E with the shape of ``M`` and, like ``M``, not reduced modulo 2 pi.
    Raises:
        RuntimeError: if Newton's method has not converged after ``max_iter`` iterations
            (cannot happen for e < 1 with this start; a guard, not a control path).
    """
    M = np.asarray(M, dtype=np.float64)
    e = np.broadcast_to(np.asarray(e, dtype=np.float64), M.shape)
    turns = np.floor(M / (2.0 * np.pi))
    Mr = M - 2.0 * np.pi * turns  # in [0, 2 pi)
    E = np.where(e < 0.8, Mr, np.pi)  # a start from which Newton converges for all e < 1
    active = np.ones(M.shape, dtype=bool)
    for _ in range(max_iter):
        # Each element stops at its own convergence, so a result never depends on the batch.
        dE = (E - e * np.sin(E) - Mr) / (1.0 - e * np.cos(E))
        E = np.where(active, E - dE, E)
        active &= np.abs(dE) > tol * np.maximum(1.0, np.abs(E))
        if not active.any():
            break
    else:  # pragma: no cover - guard
        raise RuntimeError("Kepler's equation did not converge")
    return E + 2.0 * np.pi * turns


def rotation_pqw_to_ijk(i: np.ndarray, raan: np.ndarray, argp: np.ndarray) -> np.ndarray:
    """Rotation matrices from the perifocal frame to the inertial frame, shape ``(n, 3, 3)``."""
    ci, si = np.cos(i), np.sin(i)
    cO, sO = np.cos(raan), np.sin(raan)
    cw, sw = np.cos(argp), np.sin(argp)
    R = np.empty((np.size(i), 3, 3))
    R[:, 0, 0] = cO * cw - sO * sw * ci
    R[:, 0, 1] = -cO * sw - sO * cw * ci
    R[:, 0, 2] = sO * si
    R[:, 1, 0] = sO * cw + cO * sw * ci
    R[:, 1, 1] = -sO * sw + cO * cw * ci
    R[:, 1, 2] = -cO * si
    R[:, 2, 0] = sw * si
    R[:, 2, 1] = cw * si
    R[:, 2, 2] = ci
    return R


def gravity(r: np.ndarray, mu: float = MU_EARTH) -> np.ndarray:
    """Point-mass acceleration -mu r / |r|^3; ``r`` (..., 3) km -> (..., 3) km/s^2."""
    rn = np.linalg.norm(r, axis=-1, keepdims=True)
    return -mu * r / rn**3


def propagate(a: np.ndarray, e: np.ndarray, i: np.ndarray, raan: np.ndarray, argp: np.ndarray,
              nu0: np.ndarray, t: np.ndarray, mu: float = MU_EARTH) -> tuple[np.ndarray, np.ndarray]:
    """Exact states of ``n`` orbits at times ``t``.

    Args:
        a, e, i, raan, argp, nu0: elements, each shape ``(n,)`` (km, -, rad, rad, rad, rad).
        t: times since epoch, shape ``(n, k)`` s (one time grid per orbit).
    Returns:
        ``(states, acc)``: states ``(n, k, 6)`` as [x, y, z, vx, vy, vz] in km and km/s, and
        the exact acceleration ``(n, k, 3)`` km/s^2.
    """
    a, e, i, raan, argp, nu0 = (np.atleast_1d(np.asarray(x, dtype=np.float64))
                                for x in (a, e, i, raan, argp, nu0))
    n_mean = np.sqrt(mu / a**3)[:, None]  # rad/s
    M = true_to_mean_anomaly(nu0, e)[:, None] + n_mean * t
    E = solve_kepler(M, e[:, None])
    cE, sE = np.cos(E), np.sin(E)
    ac, ec = a[:, None], e[:, None]
    b = ac * np.sqrt(1.0 - ec**2)
    r = ac * (1.0 - ec * cE)
    pos_pqw = np.stack([ac * (cE - ec), b * sE, np.zeros_like(E)], axis=-1)
    vel_pqw = np.stack([-np.sqrt(mu * ac) / r * sE, np.sqrt(mu * ac * (1.0 - ec**2)) / r * cE,
                        np.zeros_like(E)], axis=-1)
    R = rotation_pqw_to_ijk(i, raan, argp)[:, None]  # (n, 1, 3, 3)
    # Explicit sums rather than einsum/BLAS: every orbit's values are bit-identical whatever
    # the batch it is computed in (so chunked generation gives the same content hash).
    pos = R[..., 0] * pos_pqw[..., :1] + R[..., 1] * pos_pqw[..., 1:2] + R[..., 2] * pos_pqw[..., 2:]
    vel = R[..., 0] * vel_pqw[..., :1] + R[..., 1] * vel_pqw[..., 1:2] + R[..., 2] * vel_pqw[..., 2:]
    return np.concatenate([pos, vel], axis=-1), gravity(pos, mu)


def sample_times(a: np.ndarray, samples: int = SAMPLES_PER_ORBIT, mu: float = MU_EARTH) -> np.ndarray:
    """One orbit's sample times t_k = k T / samples, shape ``(n, samples)`` s."""
    return period(np.atleast_1d(a), mu)[:, None] * (np.arange(samples) / samples)[None, :]


def specific_energy(states: np.ndarray, mu: float = MU_EARTH) -> np.ndarray:
    """Specific orbital energy v^2/2 - mu/r, km^2/s^2; ``states (..., 6)`` -> ``(...)``."""
    r = np.linalg.norm(states[..., :3], axis=-1)
    v2 = np.sum(states[..., 3:] ** 2, axis=-1)
    return 0.5 * v2 - mu / r


def angular_momentum(states: np.ndarray) -> np.ndarray:
    """Specific angular momentum r x v, km^2/s; ``states (..., 6)`` -> ``(..., 3)``."""
    return np.cross(states[..., :3], states[..., 3:])
