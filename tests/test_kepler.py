"""Exact Kepler propagation against a tight numerical integration, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp

from trainables.twobody.constants import A_GEO, DU, MIN_ALTITUDE, R_EARTH, TU, VU, e_max
from trainables.twobody.dataset import TwoBodySpec, generate_arrays
from trainables.twobody.elements import KINDS, draw_elements
from trainables.twobody.kepler import (angular_momentum, period, propagate, sample_times, solve_kepler,
                                       specific_energy)


def _canonical_rhs(_t: float, y: np.ndarray) -> np.ndarray:
    r = y[:3]
    return np.concatenate([y[3:], -r / np.linalg.norm(r) ** 3])  # mu = 1 in canonical units


@pytest.mark.parametrize("e", [0.0, 0.5, 0.9])
@pytest.mark.parametrize("planar", [True, False])
def test_kepler_matches_dop853_over_one_orbit(e: float, planar: bool) -> None:
    a = (R_EARTH + MIN_ALTITUDE) / (1.0 - e) * 1.05  # perigee just above the atmosphere
    inc, raan, argp = (0.0, 0.0, 0.0) if planar else (0.9, 2.1, -0.7)
    t = sample_times(np.array([a]))                      # (1, 360) s
    states, _ = propagate([a], [e], [inc], [raan], [argp], [0.3], t)
    scale = np.array([DU] * 3 + [VU] * 3)
    y0 = states[0, 0] / scale
    sol = solve_ivp(_canonical_rhs, (0.0, t[0, -1] / TU), y0, method="DOP853", rtol=1e-12, atol=1e-14,
                    t_eval=t[0] / TU)
    assert sol.success
    ref = sol.y.T * scale                                # (360, 6) km, km/s
    pos_err = np.linalg.norm(states[0, :, :3] - ref[:, :3], axis=1) / np.linalg.norm(ref[:, :3], axis=1)
    vel_err = np.linalg.norm(states[0, :, 3:] - ref[:, 3:], axis=1) / np.linalg.norm(ref[:, 3:], axis=1)
    assert pos_err.max() < 1e-8, pos_err.max()
    assert vel_err.max() < 1e-8, vel_err.max()


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("planar", [True, False])
def test_energy_and_angular_momentum_constant(kind: str, planar: bool) -> None:
    arr, el = generate_arrays(TwoBodySpec(kind=kind, orbits=200, seed=3, planar=planar))
    energy = specific_energy(arr.states)                 # (n, 360)
    h = angular_momentum(arr.states)                     # (n, 360, 3)
    assert np.allclose(energy[:, 0], -398600.4418 / (2 * el["a"]), rtol=1e-12, atol=0)
    rel_energy = np.abs(energy - energy[:, :1]) / np.abs(energy[:, :1])
    rel_h = np.linalg.norm(h - h[:, :1], axis=-1) / np.linalg.norm(h[:, :1], axis=-1)
    assert rel_energy.max() < 1e-12
    assert rel_h.max() < 1e-12
    if planar:
        assert np.all(arr.states[..., 2] == 0) and np.all(arr.states[..., 5] == 0)


def test_accelerations_are_exact_inverse_square() -> None:
    arr, _ = generate_arrays(TwoBodySpec(orbits=5, seed=1))
    r = np.linalg.norm(arr.states[..., :3], axis=-1)
    a = np.linalg.norm(arr.acc, axis=-1)
    np.testing.assert_allclose(a, 398600.4418 / r**2, rtol=1e-14)
    cos = np.sum(arr.acc * arr.states[..., :3], axis=-1) / (a * r)
    np.testing.assert_allclose(cos, -1.0, atol=1e-14)


def test_samples_are_one_degree_of_mean_anomaly_apart() -> None:
    arr, el = generate_arrays(TwoBodySpec(orbits=4, seed=2))
    T = period(el["a"])
    np.testing.assert_allclose(np.diff(arr.t, axis=1), (T / 360)[:, None] * np.ones((1, 359)), rtol=1e-12)
    # One period later the state repeats: propagate to t = T and compare with t = 0.
    s_T, _ = propagate(el["a"], el["e"], el["i"], el["raan"], el["argp"], el["nu0"], T[:, None])
    np.testing.assert_allclose(s_T[:, 0], arr.states[:, 0], rtol=1e-10, atol=1e-9)


@given(M=st.floats(-50.0, 50.0), e=st.floats(0.0, 0.995))
def test_solve_kepler_residual(M: float, e: float) -> None:
    E = solve_kepler(np.array([M]), np.array([e]))
    assert abs(E[0] - e * np.sin(E[0]) - M) < 1e-12


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(list(KINDS)), planar=st.booleans())
def test_every_orbit_respects_perigee_and_ranges(seed: int, kind: str, planar: bool) -> None:
    el = draw_elements(kind, 64, np.random.default_rng(seed), planar=planar)
    r_min = R_EARTH + MIN_ALTITUDE
    assert np.all(el.a * (1 - el.e) >= r_min * (1 - 1e-12))
    assert np.all((el.a >= KINDS[kind]["a_min"]) & (el.a <= KINDS[kind]["a_max"]))
    assert np.all((el.e >= 0) & (el.e <= np.minimum(0.99, [e_max(a) for a in el.a])))
    assert np.all((el.nu0 >= 0) & (el.nu0 < 2 * np.pi))
    if kind == "circular":
        assert np.all(el.e == 0)


def test_generated_samples_never_go_below_the_perigee_bound() -> None:
    arr, el = generate_arrays(TwoBodySpec(kind="complex", orbits=500, seed=11))
    r = np.linalg.norm(arr.states[..., :3], axis=-1)
    assert r.min() >= (R_EARTH + MIN_ALTITUDE) * (1 - 1e-12)
    assert el["a"].max() <= A_GEO
    # e is drawn given a: high eccentricities only appear at high orbits.
    assert np.all(el["e"] <= 1 - (R_EARTH + MIN_ALTITUDE) / el["a"] + 1e-15)


def test_fixed_nu0_starts_at_perigee() -> None:
    arr, el = generate_arrays(TwoBodySpec(kind="complex", orbits=20, seed=5, fixed_nu0=True))
    r0 = np.linalg.norm(arr.states[:, 0, :3], axis=-1)
    np.testing.assert_allclose(r0, el["a"] * (1 - el["e"]), rtol=1e-12)
