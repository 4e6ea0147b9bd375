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


# --- Tsit5 ---------------------------------------------------------------------------------------
def test_tsit5_tableau_meets_every_order_condition_up_to_five() -> None:
    from trainables.common.ode import _TS_A, _TS_C, _TS_ERR

    n = 7
    a = torch.zeros(n, n, dtype=torch.float64)
    for i, row in enumerate(_TS_A):
        a[i + 1, :len(row)] = torch.tensor(row, dtype=torch.float64)
    c = torch.tensor(_TS_C, dtype=torch.float64)
    b = a[-1].clone()
    torch.testing.assert_close(a.sum(1), c, rtol=0, atol=1e-14)       # rows sum to the nodes
    conditions = {  # the 17 rooted-tree conditions of order <= 5
        1: b.sum(), 1 / 2: b @ c, 1 / 3: b @ c**2, 1 / 6: b @ a @ c, 1 / 4: b @ c**3, 1 / 8: b @ (c * (a @ c)),
        1 / 12: b @ a @ c**2, 1 / 24: b @ a @ a @ c, 1 / 5: b @ c**4, 1 / 10: b @ (c**2 * (a @ c)),
        1 / 20: b @ ((a @ c) ** 2), 1 / 15: b @ (c * (a @ c**2)), 0.05: b @ a @ c**3, 1 / 30: b @ (c * (a @ a @ c)),
        1 / 40: b @ a @ (c * (a @ c)), 1 / 60: b @ a @ a @ c**2, 1 / 120: b @ a @ a @ a @ c}
    for value, got in conditions.items():
        assert abs(float(got) - value) < 1e-13, value
    b_hat = b - torch.tensor(_TS_ERR, dtype=torch.float64)  # the embedded 4th-order solution
    for value, got in {1: b_hat.sum(), 1 / 2: b_hat @ c, 1 / 3: b_hat @ c**2, 1 / 4: b_hat @ c**3,
                       1 / 24: b_hat @ a @ a @ c}.items():
        assert abs(float(got) - value) < 1e-12, value


@pytest.mark.parametrize("rtol,atol", [(1e-6, 1e-8), (1e-9, 1e-11)])
def test_tsit5_agrees_with_dopri5_within_its_tolerance(rtol: float, atol: float) -> None:
    from trainables.common.ode import tsit5

    y0 = _initial()
    exact = odeint(lambda t, y: _kepler(y), y0, torch.arange(20, dtype=torch.float64), rtol=1e-12, atol=1e-14)
    ours, nfe = tsit5(_kepler, y0, 20, rtol, atol)
    err = (ours - exact.transpose(0, 1)).abs().max()
    assert ours.shape == (32, 20, 4) and torch.equal(ours[:, 0], y0)
    assert err < 200 * rtol, float(err)                  # global error a small multiple of the tolerance
    coarse, nfe_coarse = tsit5(_kepler, y0, 20, rtol * 1e3, atol * 1e3)
    assert nfe_coarse < nfe and (coarse - exact.transpose(0, 1)).abs().max() > err
    with pytest.raises(IntegrationError, match="max_num_steps exceeded"):
        tsit5(_kepler, y0, 50, 1e-10, 1e-12, max_steps=5)
