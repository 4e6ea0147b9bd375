"""Controlled physics environments with discrete actions (docs/domain.md, section 4).

Every state is ``[q, v]``: configuration then velocity, ``(n, 2 * q_dim)``. Action 0 is "no
forcing" everywhere. Physical parameters are drawn per sequence (uniform in ``param_ranges``)
and passed as ``{name: (n,)}``; everything is batched over sequences (numpy).

=============  =====================  =======  ==============================================
env            state                  actions  dynamics and energy
=============  =====================  =======  ==============================================
``oscillator`` x, v                   3        m x'' = -k x + u F; E = m v^2 / 2 + k x^2 / 2
``pendulum``   theta, omega           3        m l^2 theta'' = -m g l sin theta + u tau;
                                               E = m l^2 omega^2 / 2 + m g l (1 - cos theta)
``spaceship``  qx, qy, vx, vy         9        q'' = -mu q / |q|^3 + thrust d_u; E = v^2 / 2 - mu / |q|
``threebody``  x1..y3, vx1..vy3       9        planar gravity (G = 1, softening 0.1, masses per
                                               sequence), thrust d_u on body 1;
                                               E = sum m v^2 / 2 - sum m_i m_j / sqrt(r_ij^2 + eps^2)
=============  =====================  =======  ==============================================

Initial states are drawn uniformly within ``initial_ranges`` (oscillator x, v; pendulum theta,
omega; spaceship radius r and the speed as a factor of the circular speed; three-body the
triangle's radii and the speed factor); both these and ``param_ranges`` can be overridden per
dataset (:class:`~.data.WorldSpec`).

``u`` is -1, 0, +1 for actions (0, 1, 2) -> (0, +1, -1); ``d_u`` for the 9-action envs is 0
(action 0) or the unit vector at angle (u - 1) * 45 degrees. The reference integrator is
classical RK4 with ``substeps`` steps per sample, actions held over a sample: energy without
forcing is conserved to 1e-7 relative (oscillator, pendulum, spaceship) and 1e-5 (three-body)
over 200 samples at the default dt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

Params = dict[str, np.ndarray]
SCHEMES = ("rk4", "symplectic_euler")
"""Integration schemes of the simulated data (:meth:`Env.step`)."""
DIRECTIONS = np.concatenate([[[0.0, 0.0]], np.stack([np.cos(np.arange(8) * np.pi / 4),
                                                     np.sin(np.arange(8) * np.pi / 4)], 1)])
"""Thrust direction of each of the 9 actions (action 0: none), ``(9, 2)``."""
SIGN = np.array([0.0, 1.0, -1.0])
"""Forcing sign of each of the 3 actions."""
SOFTENING = 0.1


@dataclass(frozen=True)
class Env:
    """One environment: names, sizes, parameter ranges, dynamics, energy and initial states."""

    name: str
    state_names: tuple[str, ...]
    n_actions: int
    param_ranges: dict[str, tuple[float, float]]
    deriv: Callable[[np.ndarray, np.ndarray, Params], np.ndarray]
    energy: Callable[[np.ndarray, Params], np.ndarray]
    initial: Callable[[np.random.Generator, int, Params, dict[str, tuple[float, float]]], np.ndarray]
    initial_ranges: dict[str, tuple[float, float]]
    dt: float = 0.1
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.state_names)

    @property
    def q_dim(self) -> int:
        return self.dim // 2

    def draw_params(self, rng: np.random.Generator, n: int,
                    ranges: dict[str, tuple[float, float]] | None = None) -> Params:
        """Parameters of ``n`` sequences, uniform in ``param_ranges`` (``ranges`` overrides some)."""
        return {k: rng.uniform(*(ranges or {}).get(k, lohi), n) for k, lohi in self.param_ranges.items()}

    def draw_initial(self, rng: np.random.Generator, n: int, p: Params,
                     ranges: dict[str, tuple[float, float]] | None = None) -> np.ndarray:
        """Initial states of ``n`` sequences, drawn within ``initial_ranges`` (``ranges`` overrides some)."""
        return self.initial(rng, n, p, {**self.initial_ranges, **(ranges or {})})

    def step(self, s: np.ndarray, a: np.ndarray, p: Params, dt: float, substeps: int = 20,
             scheme: str = "rk4") -> np.ndarray:
        """One sample: ``dt`` (s) in ``substeps`` steps of ``scheme`` with actions ``a`` ``(n,)`` held;
        ``s`` ``(n, d)``. ``rk4``: classical Runge-Kutta; ``symplectic_euler``: v += h a(q, v), then
        q += h v (the reference three-body code's scheme: first order, bounded energy error)."""
        h = dt / substeps
        if scheme == "symplectic_euler":
            q = self.q_dim
            for _ in range(substeps):
                v = s[:, q:] + h * self.deriv(s, a, p)[:, q:]
                s = np.concatenate([s[:, :q] + h * v, v], 1)
            return s
        for _ in range(substeps):
            k1 = self.deriv(s, a, p)
            k2 = self.deriv(s + 0.5 * h * k1, a, p)
            k3 = self.deriv(s + 0.5 * h * k2, a, p)
            k4 = self.deriv(s + h * k3, a, p)
            s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return s

    def rollout(self, s0: np.ndarray, actions: np.ndarray, p: Params, dt: float, substeps: int = 20,
                scheme: str = "rk4") -> np.ndarray:
        """States ``(n, T + 1, d)`` from ``s0`` ``(n, d)`` under ``actions`` ``(n, T)``."""
        out = [s0]
        for t in range(actions.shape[1]):
            out.append(self.step(out[-1], actions[:, t], p, dt, substeps, scheme))
        return np.stack(out, 1)


def _oscillator_deriv(s: np.ndarray, a: np.ndarray, p: Params) -> np.ndarray:
    x, v = s[:, 0], s[:, 1]
    return np.stack([v, (-p["k"] * x + SIGN[a] * 0.5) / p["m"]], 1)


def _pendulum_deriv(s: np.ndarray, a: np.ndarray, p: Params) -> np.ndarray:
    th, om = s[:, 0], s[:, 1]
    return np.stack([om, -9.81 / p["l"] * np.sin(th) + SIGN[a] * 1.0 / (p["m"] * p["l"] ** 2)], 1)


def _spaceship_deriv(s: np.ndarray, a: np.ndarray, p: Params) -> np.ndarray:
    q, v = s[:, :2], s[:, 2:]
    r3 = np.linalg.norm(q, axis=1, keepdims=True) ** 3
    return np.concatenate([v, -p["mu"][:, None] * q / r3 + 0.05 * DIRECTIONS[a]], 1)


def _masses(p: Params) -> np.ndarray:
    return np.stack([p["m1"], p["m2"], p["m3"]], 1)  # (n, 3)


def _threebody_deriv(s: np.ndarray, a: np.ndarray, p: Params) -> np.ndarray:
    n = len(s)
    q, v = s[:, :6].reshape(n, 3, 2), s[:, 6:]
    m = _masses(p)
    diff = q[:, None, :, :] - q[:, :, None, :]                        # (n, i, j, 2): q_j - q_i
    r3 = (np.sum(diff ** 2, -1) + SOFTENING ** 2) ** 1.5              # (n, i, j)
    acc = np.sum(m[:, None, :, None] * diff / r3[..., None], axis=2)  # sum over j (the i = j term is 0)
    acc[:, 0] += 0.05 * DIRECTIONS[a]
    return np.concatenate([v, acc.reshape(n, 6)], 1)


def _threebody_energy(s: np.ndarray, p: Params) -> np.ndarray:
    n = len(s)
    q, v = s[:, :6].reshape(n, 3, 2), s[:, 6:].reshape(n, 3, 2)
    m = _masses(p)
    kinetic = 0.5 * np.sum(m * np.sum(v ** 2, -1), 1)
    pot = np.zeros(n)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        pot -= m[:, i] * m[:, j] / np.sqrt(np.sum((q[:, i] - q[:, j]) ** 2, -1) + SOFTENING ** 2)
    return kinetic + pot


def _threebody_initial(rng: np.random.Generator, n: int, p: Params, r: dict[str, tuple[float, float]]) -> np.ndarray:
    """Three bodies near a rotating equilateral triangle of radius ~1 (centre of mass at rest)."""
    angle = rng.uniform(0, 2 * np.pi, (n, 1)) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    radius = rng.uniform(*r["radius"], (n, 3))
    q = np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)          # (n, 3, 2)
    speed = np.sqrt(_masses(p).mean(1, keepdims=True) / np.sqrt(3)) * rng.uniform(*r["speed_factor"], (n, 3))
    v = np.stack([-speed * np.sin(angle), speed * np.cos(angle)], -1)
    m = _masses(p)[..., None]
    q -= (m * q).sum(1, keepdims=True) / m.sum(1, keepdims=True)
    v -= (m * v).sum(1, keepdims=True) / m.sum(1, keepdims=True)
    return np.concatenate([q.reshape(n, 6), v.reshape(n, 6)], 1)


def _spaceship_initial(rng: np.random.Generator, n: int, p: Params, ranges: dict[str, tuple[float, float]]
                       ) -> np.ndarray:
    r, phi = rng.uniform(*ranges["r"], n), rng.uniform(0, 2 * np.pi, n)
    speed = np.sqrt(p["mu"] / r) * rng.uniform(*ranges["speed_factor"], n)
    return np.stack([r * np.cos(phi), r * np.sin(phi), -speed * np.sin(phi), speed * np.cos(phi)], 1)


ENVS: dict[str, Env] = {
    "oscillator": Env("oscillator", ("x", "v"), 3, {"k": (0.5, 2.0), "m": (0.5, 2.0)}, _oscillator_deriv,
                      lambda s, p: 0.5 * p["m"] * s[:, 1] ** 2 + 0.5 * p["k"] * s[:, 0] ** 2,
                      lambda rng, n, p, r: rng.uniform([r["x"][0], r["v"][0]], [r["x"][1], r["v"][1]], (n, 2)),
                      {"x": (-1.0, 1.0), "v": (-1.0, 1.0)}),
    "pendulum": Env("pendulum", ("theta", "omega"), 3, {"l": (0.5, 1.5), "m": (0.5, 1.5)}, _pendulum_deriv,
                    lambda s, p: 0.5 * p["m"] * p["l"] ** 2 * s[:, 1] ** 2
                    + p["m"] * 9.81 * p["l"] * (1 - np.cos(s[:, 0])),
                    lambda rng, n, p, r: np.stack([rng.uniform(*r["theta"], n), rng.uniform(*r["omega"], n)], 1),
                    {"theta": (-2.0, 2.0), "omega": (-1.0, 1.0)}, dt=0.05),
    "spaceship": Env("spaceship", ("qx", "qy", "vx", "vy"), 9, {"mu": (0.8, 1.2)}, _spaceship_deriv,
                     lambda s, p: 0.5 * np.sum(s[:, 2:] ** 2, 1) - p["mu"] / np.linalg.norm(s[:, :2], axis=1),
                     _spaceship_initial, {"r": (0.8, 1.5), "speed_factor": (0.9, 1.1)}),
    "threebody": Env("threebody", ("x1", "y1", "x2", "y2", "x3", "y3", "vx1", "vy1", "vx2", "vy2", "vx3", "vy3"), 9,
                     {"m1": (0.8, 1.2), "m2": (0.8, 1.2), "m3": (0.8, 1.2)}, _threebody_deriv, _threebody_energy,
                     _threebody_initial, {"radius": (0.9, 1.1), "speed_factor": (0.9, 1.1)}, dt=0.05),
}
"""Environments by name."""


def canonical_env(name: str) -> str:
    """The :data:`ENVS` name a user's spelling means: case, ``_``, ``-`` and spaces do not matter
    (``three_body``, ``three-body``, ``ThreeBody`` -> ``threebody``); the one place env names
    are normalised."""
    key = "".join(ch for ch in str(name).lower() if ch not in "_- ")
    for canonical in ENVS:
        if "".join(ch for ch in canonical if ch not in "_- ") == key:
            return canonical
    from trainables.common.errors import ConfigError

    raise ConfigError(f"config.env: {name!r} is not allowed; allowed: {', '.join(ENVS)} "
                      "(any case, with or without '_' or '-': three_body, ThreeBody)")


def random_actions(rng: np.random.Generator, n: int, steps: int, n_actions: int, hold: int) -> np.ndarray:
    """Random discrete actions ``(n, steps)``, each held for ``hold`` samples."""
    draws = rng.integers(0, n_actions, (n, -(-steps // hold)))
    return np.repeat(draws, hold, axis=1)[:, :steps]
