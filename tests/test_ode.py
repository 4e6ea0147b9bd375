"""The lean batched Dormand-Prince against torchdiffeq's dopri5 (the reference)."""

from __future__ import annotations

import pytest
import torch
from torchdiffeq import odeint

from trainables.common.ode import IntegrationError, dopri5


def _kepler(y: torch.Tensor) -> torch.Tensor:
    r = y[..., :2]
    return torch.cat([y[..., 2:], -r / torch.linalg.vector_norm(r, dim=-1, keepdim=True) ** 3], -1)


def _initial(n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    r = 1.0 + 2.0 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    e = 0.8 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    v = torch.sqrt((1 + e) / r)  # start at perigee with eccentricity e
    return torch.cat([r, torch.zeros_like(r), torch.zeros_like(r), v], -1)


@pytest.mark.parametrize("rtol,atol", [(1e-6, 1e-8), (1e-9, 1e-11)])
def test_same_steps_and_values_as_torchdiffeq(rtol: float, atol: float) -> None:
    y0 = _initial()
    ours, nfe = dopri5(_kepler, y0, 20, rtol, atol)
    calls = 0

    def counted(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        return _kepler(y)

    ref = odeint(counted, y0, torch.arange(20, dtype=torch.float64), rtol=rtol, atol=atol, method="dopri5")
    assert nfe == calls                      # the same step sequence
    torch.testing.assert_close(ours, ref.transpose(0, 1), rtol=1e-9, atol=1e-11)


def test_gradients_match_torchdiffeq() -> None:
    y0 = _initial(8).requires_grad_(True)
    scale = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    ours, _ = dopri5(lambda y: scale * _kepler(y), y0, 10, 1e-8, 1e-10)
    g_ours = torch.autograd.grad(ours.pow(2).sum(), (y0, scale))
    ref = odeint(lambda t, y: scale * _kepler(y), y0, torch.arange(10, dtype=torch.float64), rtol=1e-8, atol=1e-10)
    g_ref = torch.autograd.grad(ref.pow(2).sum(), (y0, scale))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


def test_failures_are_reported_not_hung() -> None:
    with pytest.raises(IntegrationError, match="max_num_steps exceeded"):
        dopri5(_kepler, _initial(), 50, 1e-10, 1e-12, max_steps=5)
    with pytest.raises(IntegrationError, match="non-finite"):
        dopri5(lambda y: y * float("nan"), _initial(), 5, 1e-6, 1e-8)
    with pytest.raises(IntegrationError, match="non-finite"):
        dopri5(lambda y: y * float("inf"), _initial(), 5, 1e-6, 1e-8)
    blow_up = [0]

    def later_inf(y: torch.Tensor) -> torch.Tensor:  # finite at first, infinite after a few calls
        blow_up[0] += 1
        return _kepler(y) * (1.0 if blow_up[0] < 12 else float("inf"))

    with pytest.raises(IntegrationError, match="non-finite"):
        dopri5(later_inf, _initial(), 10, 1e-6, 1e-8)
