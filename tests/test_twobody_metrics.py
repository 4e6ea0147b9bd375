"""Metric functions against scipy.stats / numpy on known distributions and exact fields."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from trainables.twobody.dataset import TwoBodySpec, generate_arrays
from trainables.twobody.metrics import (distribution_stats, field_metrics, loglog_slope, mode_kde, rollout_metrics,
                                        true_anomaly_deg)

MU = 398600.4418


@pytest.mark.parametrize("dist", [stats.gamma(3.0), stats.lognorm(0.5), stats.norm(2.0, 3.0), stats.expon()])
def test_distribution_stats_match_scipy(dist: stats.rv_continuous) -> None:
    x = dist.rvs(size=40_000, random_state=np.random.default_rng(1))
    s = distribution_stats(x)
    assert s["mean"] == pytest.approx(np.mean(x), rel=1e-12)
    assert s["median"] == pytest.approx(np.median(x), rel=1e-12)
    assert s["std"] == pytest.approx(np.std(x), rel=1e-12)
    assert s["skew"] == pytest.approx(stats.skew(x), rel=1e-10)
    q1, q2, q3 = np.percentile(x, [25, 50, 75])
    assert s["bowley"] == pytest.approx((q3 + q1 - 2 * q2) / (q3 - q1), rel=1e-10)
    assert s["pearson_sk2"] == pytest.approx(3 * (np.mean(x) - np.median(x)) / np.std(x), rel=1e-10)
    # And against the distributions' own (population) values.
    assert s["skew"] == pytest.approx(float(dist.stats(moments="s")), rel=0.1, abs=0.05)


@pytest.mark.parametrize("dist,mode,tol", [(stats.gamma(3.0), 2.0, 0.1), (stats.lognorm(0.5), np.exp(-0.25), 0.1),
                                           (stats.norm(2.0, 3.0), 2.0, 0.25)])  # a normal's peak is flat
def test_kde_mode_and_pearson_first_skewness(dist: stats.rv_continuous, mode: float, tol: float) -> None:
    x = dist.rvs(size=40_000, random_state=np.random.default_rng(2))
    assert mode_kde(x) == pytest.approx(mode, abs=tol * dist.std())
    s = distribution_stats(x)
    assert s["pearson_sk1"] == pytest.approx((dist.mean() - mode) / dist.std(), abs=tol)


def test_degenerate_samples_give_nan_not_errors() -> None:
    s = distribution_stats(np.full(10, 3.0))
    assert s["mean"] == 3.0 and s["std"] == 0.0 and np.isnan(s["skew"]) and np.isnan(s["bowley"])
    assert np.isnan(distribution_stats(np.array([]))["mean"])


def test_exact_field_scores_perfectly_and_reversed_field_worst() -> None:
    arr, _ = generate_arrays(TwoBodySpec(orbits=20, seed=3))
    pos = arr.states[..., :3]
    r = np.linalg.norm(pos, axis=-1)
    m, per_point = field_metrics(arr.acc, arr.acc, pos, (r.min(), np.median(r)))
    assert m["accel_err_mean"] == 0 and m["radial_pct"] == 0 and m["theta_deg"] < 1e-5
    assert m["loglog_slope_in"] == pytest.approx(-2, abs=1e-9) and m["loglog_slope_out"] == pytest.approx(-2, abs=1e-9)
    assert per_point["accel_err_pct"].shape == (20 * 360,)
    bad, _ = field_metrics(-arr.acc, arr.acc, pos, (r.min(), r.max()))
    assert bad["accel_err_mean"] == pytest.approx(200) and bad["radial_pct"] == 100
    assert bad["theta_deg"] == pytest.approx(180, abs=1e-5) and np.isnan(bad["loglog_slope_out"])
    half, _ = field_metrics(0.5 * arr.acc, arr.acc, pos, (r.min(), r.max()))
    assert half["accel_err_mean"] == pytest.approx(50) and half["accel_err_std"] == pytest.approx(0, abs=1e-9)


def test_loglog_slope_of_power_laws() -> None:
    r = np.geomspace(1, 10, 50)
    assert loglog_slope(r, 3 * r ** -1.5) == pytest.approx(-1.5)
    assert np.isnan(loglog_slope(np.ones(5), np.ones(5)))


def test_rollout_metrics_of_the_truth_and_of_a_drift() -> None:
    arr, _ = generate_arrays(TwoBodySpec(orbits=5, seed=3))
    truth = np.concatenate([arr.states, arr.states[:, :1]], axis=1)
    m = rollout_metrics(truth, truth, MU)
    assert m["rollout_pos_err_pct"] == 0 and m["rollout_energy_drift"] < 1e-12
    drifted = truth.copy()
    drifted[:, -1, 3:] *= 1.01
    m = rollout_metrics(drifted, truth, MU)
    assert m["rollout_energy_drift"] > 1e-3 and m["rollout_pos_err_final_pct"] == 0


def test_true_anomaly_of_generated_orbits() -> None:
    arr, el = generate_arrays(TwoBodySpec(orbits=6, seed=9, planar=False))
    nu = true_anomaly_deg(arr.states[:, 0], MU)
    expected = np.degrees(el["nu0"]) % 360
    diff = (nu - expected + 180) % 360 - 180
    assert np.abs(diff[el["e"] > 1e-3]).max() < 1e-6
