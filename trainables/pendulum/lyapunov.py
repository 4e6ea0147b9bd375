"""Largest Lyapunov exponents by the two-trajectory method (Benettin et al. 1980).

A reference and a perturbed trajectory start ``d0`` apart; every ``tau`` seconds their
separation ``d`` is measured, ``log(d / d0)`` accumulated, and the perturbed trajectory pulled
back to distance ``d0`` along the same direction. The running estimate after ``n`` intervals is
``sum(log(d_i / d0)) / (n tau)``; it converges to the largest exponent (1/s). The same loop
serves the true system (:func:`true_exponent`) and a learned model (``metrics.model_exponent``):
only ``advance``, ``separation`` and ``rescale`` differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from .physics import Params, integrate_reference

X = TypeVar("X")


@dataclass(frozen=True)
class LyapunovEstimate:
    """``exponent`` (1/s) after ``times[-1]`` s, and the running estimate ``running`` at ``times``."""

    exponent: float
    times: np.ndarray
    running: np.ndarray

    @property
    def lyapunov_time_s(self) -> float:
        """1 / exponent (s); infinite for a non-positive exponent."""
        return 1.0 / self.exponent if self.exponent > 0 else math.inf


def benettin(advance: Callable[[X, X], tuple[X, X]], ref: X, pert: X, separation: Callable[[X, X], float],
             rescale: Callable[[X, X, float], X], tau: float, intervals: int) -> LyapunovEstimate:
    """The generic two-trajectory loop.

    Args:
        advance: moves both trajectories forward by ``tau`` seconds.
        ref, pert: the two start states, ``separation(ref, pert)`` apart (that is ``d0``).
        separation: distance between two states.
        rescale: ``rescale(ref, pert, f)`` is ``ref + f (pert - ref)``.
        tau: renormalisation interval (s); intervals: how many.
    """
    d0 = separation(ref, pert)
    if not d0 > 0:
        raise ValueError("the two start states must differ")
    logs = np.empty(intervals)
    for i in range(intervals):
        ref, pert = advance(ref, pert)
        d = separation(ref, pert)
        if not (d > 0 and math.isfinite(d)):  # identical or blown up: the separation carries no information
            logs = logs[:i]
            break
        logs[i] = math.log(d / d0)
        pert = rescale(ref, pert, d0 / d)
    times = tau * np.arange(1, len(logs) + 1)
    running = np.cumsum(logs) / times if len(logs) else np.array([math.nan])
    return LyapunovEstimate(float(running[-1]), times, running)


def true_exponent(state0: np.ndarray, params: Params | None = None, t_end: float = 200.0, tau: float = 0.1,
                  d0: float = 1e-8, rtol: float = 1e-11, atol: float = 1e-11) -> LyapunovEstimate:
    """Largest Lyapunov exponent (1/s) of the double pendulum from ``state0`` ``(4,)`` rad, rad/s.

    The perturbation is ``d0`` along theta1; distances are Euclidean in (theta, omega).
    Integrates both trajectories together with DOP853 at tolerances well below ``d0``;
    ``params`` defaults to l = 1 m, m = 1 kg, g = 9.81 m/s^2.
    """
    params = params or Params()
    def advance(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = integrate_reference(np.stack([a, b]), np.array([0.0, tau]), params, rtol=rtol, atol=atol,
                                   batched=True)
        return both[0, -1], both[1, -1]

    ref = np.asarray(state0, dtype=float)
    pert = ref + np.array([d0, 0.0, 0.0, 0.0])
    return benettin(advance, ref, pert, lambda a, b: float(np.linalg.norm(b - a)),
                    lambda a, b, f: a + f * (b - a), tau, int(round(t_end / tau)))


def convergence_table(est: LyapunovEstimate, at: tuple[float, ...] = (10, 25, 50, 100, 150, 200, 400)
                      ) -> list[tuple[float, float]]:
    """``[(t, running estimate at t)]`` for the ``at`` times the estimate reaches."""
    return [(t, float(est.running[int(round(t / (est.times[1] - est.times[0]))) - 1]))
            for t in at if len(est.times) > 1 and t <= est.times[-1] + 1e-9]
