"""A lean batched Dormand-Prince 5(4) integrator on a unit-spaced output grid.

Why it exists: on the two-body recipe (200 segments x 18 samples, an MLP of 64 x 2, one CPU
thread) torchdiffeq's general-purpose ``dopri5`` spends about 0.3 ms per function evaluation
on bookkeeping (float64 time next to float32 states, ``_UncheckedAssign`` scratch tensors,
event and ``step_t``/``jump_t`` handling, perturbation wrappers, per-step finiteness
assertions), as much as the field itself. This module is the same method — the same
Dormand-Prince tableau, Hairer's initial step, the same RMS error norm
``rms(err / (atol + rtol max(|y0|, |y1|)))``, the same step-size controller
(safety 0.9, growth <= 10, shrink >= 0.2, no shrink on an accepted step) and the same quartic
dense output through torchdiffeq's mid-point coefficients — without that bookkeeping:
every stage combination is one stacked matmul, time is a Python float, and there is one
host sync per step (the accept/reject decision). It is differentiable by ordinary autograd.

torchdiffeq stays the reference: the tests check both agree, and ``solver:
torchdiffeq_dopri5`` (plus ``rk4`` and the adjoint) use torchdiffeq itself.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

_A: list[list[float]] = [
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],  # = the 5th-order solution
]
_ERR: list[float] = [35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
                     -2187 / 6784 + 12231 / 42400, 11 / 84 - 649 / 6300, -1 / 60]
_MID: list[float] = [6025192743 / 30085553152 / 2, 0.0, 51252292925 / 65400821598 / 2,
                     -2691868925 / 45128329728 / 2, 187940372067 / 1594534317056 / 2,
                     -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2]


class IntegrationError(RuntimeError):
    """The integration cannot go on: step-size underflow, too many steps, non-finite state."""


def _combo(ks: list[torch.Tensor], coeffs: list[float], h: float) -> torch.Tensor:
    """h * sum_i coeffs[i] ks[i] (zero coefficients skipped) as one stacked matmul: (..., D)."""
    idx = [i for i, c in enumerate(coeffs) if c != 0.0]
    if len(idx) == 1:
        return ks[idx[0]] * (coeffs[idx[0]] * h)
    stacked = torch.stack([ks[i] for i in idx], dim=-1)
    weights = torch.tensor([coeffs[i] * h for i in idx], dtype=stacked.dtype, device=stacked.device)
    return stacked @ weights


def _rms(x: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean(x * x)))


def worst_rms(x: torch.Tensor) -> float:
    """The error norm of replicates integrated together, ``x (N, ..., D)``: the RMS of each
    replicate on its own, and the largest finite one, so no replicate is integrated less
    accurately than it would be alone. A replicate whose values are not finite (it diverged)
    is left out; NaN when none is finite."""
    per = torch.sqrt(torch.mean((x * x).reshape(x.shape[0], -1), dim=1))
    finite = per[torch.isfinite(per)]
    return float(finite.max()) if finite.numel() else math.nan


Norm = Callable[[torch.Tensor], float]


def _try_step(func: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, k1: torch.Tensor, h: float,
              rows: list[list[float]], err: list[float], rtol: float, atol: float, norm: Norm = _rms
              ) -> tuple[list[torch.Tensor], torch.Tensor, float]:
    """One attempted step of an FSAL embedded pair from ``y`` (derivative ``k1``) of size ``h``:
    the stages (the last is f at the new state), the new state and the RMS error ratio (<= 1: accept).

    Raises:
        IntegrationError: a non-finite error estimate (the state blew up).
    """
    ks = [k1]
    for row in rows[:-1]:
        ks.append(func(y + _combo(ks, row, h)))
    y1 = y + _combo(ks, rows[-1], h)
    ks.append(func(y1))
    with torch.no_grad():
        tol = atol + rtol * torch.maximum(y.abs(), y1.abs())
        ratio = norm(_combo(ks, err, h) / tol)
    if not math.isfinite(ratio):
        raise IntegrationError("non-finite values in state `y`")
    return ks, y1, ratio


def _check_step(attempts: int, max_steps: int, s: float, h: float) -> None:
    """Refuse attempt number ``attempts`` beyond ``max_steps``, or a step ``h`` too small to move ``s``."""
    if attempts > max_steps:
        raise IntegrationError(f"max_num_steps exceeded ({attempts - 1}>={max_steps})")
    if s + h <= s:
        raise IntegrationError(f"underflow in dt {h}")


def _factor(ratio: float) -> float:
    """The step-size controller: safety 0.9, growth <= 10, shrink >= 0.2, no shrink on acceptance."""
    return 10.0 if ratio == 0.0 else min(10.0, max(1.0 if ratio < 1.0 else 0.2, 0.9 * ratio ** -0.2))


@torch.no_grad()
def _initial_step(func: Callable[[torch.Tensor], torch.Tensor], y0: torch.Tensor, f0: torch.Tensor,
                  rtol: float, atol: float, norm: Norm = _rms) -> float:
    """Hairer, Norsett & Wanner, Solving ODEs I, sec. II.4 (as torchdiffeq), for order 5."""
    scale = atol + y0.abs() * rtol
    d0, d1 = norm(y0 / scale), norm(f0 / scale)
    if not (math.isfinite(d0) and math.isfinite(d1)):
        raise IntegrationError("non-finite values in state `y` or its derivative")
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = func(y0 + h0 * f0)
    d2 = norm((f1 - f0) / scale) / h0
    if not math.isfinite(d2):
        raise IntegrationError("non-finite values in state `y` or its derivative")
    h1 = max(1e-6, h0 * 1e-3) if d1 <= 1e-15 and d2 <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    return min(100 * h0, h1)


def dopri5(func: Callable[[torch.Tensor], torch.Tensor], y0: torch.Tensor, n_points: int, rtol: float,
           atol: float, max_steps: int = 10_000, norm: Norm = _rms) -> tuple[torch.Tensor, int]:
    """Integrate dy/ds = func(y) (autonomous) and return y at s = 0, 1, ..., n_points - 1.

    Args:
        func: the right-hand side, ``(B, D) -> (B, D)``; one error norm over the whole batch
            (the step size is shared, as in torchdiffeq).
        y0: initial states ``(B, D)`` (or ``(N, B, D)``: N replicates, with ``norm=worst_rms``).
        n_points: number of output points (unit spacing).
        rtol, atol: tolerances; max_steps: bound on attempted steps.
        norm: the error norm (the RMS over everything; :func:`worst_rms` for replicates).
    Returns:
        ``(ys (B, n_points, D), function evaluations)`` (``(N, B, n_points, D)`` for replicates).
    Raises:
        IntegrationError: more than ``max_steps`` steps, step-size underflow, or a non-finite
            error estimate (the state blew up).
    """
    k1 = func(y0)
    nfe = 2
    h = _initial_step(func, y0, k1, rtol, atol, norm)
    y, s, outputs, j, attempts = y0, 0.0, [y0], 1, 0
    while j < n_points:
        attempts += 1
        _check_step(attempts, max_steps, s, h)
        ks, y1, ratio = _try_step(func, y, k1, h, _A, _ERR, rtol, atol, norm)
        k7 = ks[-1]
        nfe += 6
        if ratio <= 1.0:
            if s + h >= j:  # quartic dense output for the grid points this step passes
                y_mid = y + _combo(ks, _MID, h)
                a = 2 * h * (k7 - k1) - 8 * (y1 + y) + 16 * y_mid
                b = h * (5 * k1 - 3 * k7) + 18 * y + 14 * y1 - 32 * y_mid
                c = h * (k7 - 4 * k1) - 11 * y - 5 * y1 + 16 * y_mid
                d = h * k1
                while j < n_points and j <= s + h:
                    x = (j - s) / h
                    outputs.append(y + x * (d + x * (c + x * (b + x * a))))
                    j += 1
            s, y, k1 = s + h, y1, k7
        h *= _factor(ratio)
    return torch.stack(outputs, dim=-2), nfe


# Tsitouras (2011) 5(4): c, the stage rows (the last row = the 5th-order solution, FSAL) and the
# error weights b - b_hat. The tests check every order condition up to order 5 on these numbers.
_TS_A: list[list[float]] = [
    [0.161],
    [-0.008480655492356989, 0.335480655492357],
    [2.897153057105493, -6.359448489975075, 4.3622954328695815],
    [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
    [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
    [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774],
]
_TS_C: list[float] = [0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]
_TS_ERR: list[float] = [0.001780011052226, 0.000816434459657, -0.007880878010262, 0.144711007173263,
                        -0.582357165452555, 0.458082105929187, -1 / 66]


def tsit5(func: Callable[[torch.Tensor], torch.Tensor], y0: torch.Tensor, n_points: int, rtol: float,
          atol: float, max_steps: int = 10_000, norm: Norm = _rms) -> tuple[torch.Tensor, int]:
    """Tsitouras 5(4) (the default of the reference JAX + Diffrax stack), same interface, error
    norm and step-size controller as :func:`dopri5`. Steps are shortened to land on each output
    point, so every output is a solver state (no interpolation).

    Returns:
        ``(ys (B, n_points, D), function evaluations)`` (``(N, B, n_points, D)`` for replicates).
    Raises:
        IntegrationError: as :func:`dopri5`.
    """
    k1 = func(y0)
    nfe = 2
    h = _initial_step(func, y0, k1, rtol, atol, norm)
    y, s, outputs, j, attempts = y0, 0.0, [y0], 1, 0
    while j < n_points:
        attempts += 1
        step = min(h, j - s)
        _check_step(attempts, max_steps, s, step)
        ks, y1, ratio = _try_step(func, y, k1, step, _TS_A, _TS_ERR, rtol, atol, norm)
        nfe += 6
        if ratio <= 1.0:
            s, y, k1 = (float(j), y1, ks[-1]) if step == j - s else (s + step, y1, ks[-1])
            if s == j:
                outputs.append(y1)
                j += 1
        # a step shortened to land on an output point does not shrink the next one
        h = max(h, step * _factor(ratio)) if step < h and ratio <= 1.0 else step * _factor(ratio)
    return torch.stack(outputs, dim=-2), nfe


def adaptive_solver(name: str) -> Callable[..., tuple[torch.Tensor, int]]:
    """The lean batched solver called ``name``: ``dopri5`` or ``tsit5``."""
    return {"dopri5": dopri5, "tsit5": tsit5}[name]
