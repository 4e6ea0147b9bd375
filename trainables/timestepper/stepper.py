"""The learned step-size network, its band loss, and integrations with it and with the two baselines.

The network maps features (:mod:`.features`) to ``log dt``, offset by ``log(dt_init * period)``
so that an untrained network proposes ``dt_init`` periods. A step's quality is its relative
energy error ``|E(after) - E(before)| / |E0|``; the **band loss** (:func:`band_loss`) is zero when
the error is inside ``[band_low * thr, thr]`` and otherwise regresses log dt onto the value that
would centre it (velocity Verlet's per-step energy error grows like dt^3), pushing dt down above
the band and up below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.common.nn import mlp

from .features import History, analytic
from .nbody import System, energy, r32_dt, verlet


class StepNet(nn.Module):
    """features ``(..., F)`` -> log dt ``(...)`` (time units)."""

    def __init__(self, features: int, width: int, depth: int, activation: str, log_dt0: float) -> None:
        super().__init__()
        self.net = mlp(features, 1, width, depth, activation).double()
        with torch.no_grad():  # start at dt_init exactly
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()
        self.log_dt0 = log_dt0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[..., 0] + self.log_dt0


def band_loss(log_dt: torch.Tensor, err: torch.Tensor, threshold: float, band_low: float) -> torch.Tensor:
    """Mean band loss ``(log dt - log dt*)^2`` over steps ``(...)`` whose error is outside the band.

    ``log dt*`` is where the dt^3 law puts the error at the band's geometric centre, at most one
    decade away (a step that blew up far beyond the threshold is not trusted for more).
    """
    log_err = torch.log(err.detach() + 1e-300)
    centre = math.log(threshold) + 0.5 * math.log(band_low)
    target = log_dt.detach() - torch.clamp((log_err - centre) / 3, -math.log(10), math.log(10))
    outside = (log_err > math.log(threshold)) | (log_err < math.log(band_low * threshold))
    return torch.where(outside, (log_dt - target) ** 2, torch.zeros_like(log_dt)).mean()


def step_error(q: torch.Tensor, v: torch.Tensor, m: torch.Tensor, log_dt: torch.Tensor, e_scale: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Take Verlet steps of ``exp(log_dt)``; returns (q', v', relative energy error), differentiable in log dt."""
    q1, v1 = verlet(q, v, m, torch.exp(log_dt))
    return q1, v1, (energy(q1, v1, m) - energy(q, v, m)).abs() / e_scale


@dataclass
class Integration:
    """A long integration: max and final relative energy error, steps taken, mean dt, steps per orbit."""

    energy_error: float
    final_energy_error: float
    steps: int
    mean_dt: float
    steps_per_orbit: float


def _run(system: System, orbits: float, next_dt, trace: dict[str, list[float]] | None = None  # type: ignore[no-untyped-def]
         ) -> Integration:
    """Integrate ``system`` for ``orbits`` periods (numpy Verlet) with ``next_dt(q, v) -> dt``.

    With ``trace``, every step appends to its lists ``t`` (start of the step), ``r`` (|q0 - q1|
    there), ``dt``, ``r32`` (``r32_dt(q, m, 1)`` there) and ``energy_error`` (after the step)."""
    q, v, m = system.q.copy(), system.v.copy(), system.m
    e0 = float(energy(q, v, m))
    t_end, t, steps, worst = orbits * system.period, 0.0, 0, 0.0
    while t < t_end:
        dt = float(next_dt(q, v))
        if not (dt > 0 and math.isfinite(dt)) or steps > 5_000_000:
            return Integration(math.inf, math.inf, steps, math.nan, math.inf)
        if trace is not None:
            for key, value in (("t", t), ("r", float(np.linalg.norm(q[0] - q[1]))), ("dt", dt),
                               ("r32", r32_dt(q, m, 1.0))):
                trace.setdefault(key, []).append(value)
        q, v = verlet(q, v, m, dt)
        t += dt
        steps += 1
        error = abs(float(energy(q, v, m)) - e0) / abs(e0)
        worst = max(worst, error)
        if trace is not None:
            trace.setdefault("energy_error", []).append(error)
    final = abs(float(energy(q, v, m)) - e0) / abs(e0)
    return Integration(worst, final, steps, t / steps, steps * system.period / t)


def integrate_learned(net: StepNet, system: System, orbits: float, kind: str, history_len: int,
                      trace: dict[str, list[float]] | None = None) -> Integration:
    """The learned stepper alone (no training): its dt at every state (``trace``: see :func:`_run`)."""
    m = torch.as_tensor(system.m, dtype=torch.float64)
    history = History(history_len if kind == "history" else 1, 4 * len(system.m) * (len(system.m) - 1) // 2)

    @torch.no_grad()
    def next_dt(q: np.ndarray, v: np.ndarray) -> float:
        row = analytic(torch.as_tensor(q), torch.as_tensor(v), m)
        history.push(row)
        return float(torch.exp(net(history.rows.reshape(-1))))

    return _run(system, orbits, next_dt, trace)


def integrate_fixed(system: System, orbits: float, dt: float) -> Integration:
    return _run(system, orbits, lambda q, v: dt)


def integrate_r32(system: System, orbits: float, eta: float) -> Integration:
    return _run(system, orbits, lambda q, v: r32_dt(q, system.m, eta))


def match(run, x0: float, target: float, iterations: int = 10) -> tuple[float, Integration]:  # type: ignore[no-untyped-def]
    """The parameter x (a dt, or eta) at which ``run(x).energy_error`` equals ``target`` (within 5 %):
    bracket it by doubling or halving from ``x0``, then interpolate in log-log inside the bracket
    (Verlet's error grows like x^2, so this converges in a few runs). Returns x and its run."""
    def log_gap(res: Integration) -> float:
        err = res.energy_error
        return math.log(err / target) if math.isfinite(err) and err > 0 else math.inf

    x, res = x0, run(x0)
    lo: tuple[float, float, Integration] | None = None   # (x, gap < 0, run)
    hi: tuple[float, float, Integration] | None = None   # (x, gap > 0, run)
    for _ in range(iterations * 3):
        gap = log_gap(res)
        if abs(gap) < math.log(1.05):
            return x, res
        if gap < 0:
            lo = (x, gap, res)
        else:
            hi = (x, gap, res)
        if lo is not None and hi is not None:
            break
        x = x * 2 if hi is None else x / 2
        res = run(x)
    if lo is None or hi is None:
        return x, res
    for _ in range(iterations):
        if not math.isfinite(hi[1]):
            x = math.sqrt(lo[0] * hi[0])
        else:  # straight line in (log x, log err) through both ends
            w = lo[1] / (lo[1] - hi[1])
            x = math.exp(math.log(lo[0]) + w * (math.log(hi[0]) - math.log(lo[0])))
        res = run(x)
        gap = log_gap(res)
        if abs(gap) < math.log(1.05):
            break
        if gap < 0:
            lo = (x, gap, res)
        else:
            hi = (x, gap, res)
    return x, res
