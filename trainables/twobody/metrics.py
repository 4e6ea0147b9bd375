"""Held-out metrics of a learned field, in physical units, with stable flat names.

For each test set ``S`` (the dataset name without its ``_test`` suffix) :func:`evaluate_field`
returns, under the prefix ``test/S/``:

- ``accel_err_mean``, ``accel_err_median``, ``accel_err_std``: per-point acceleration error
  |a_pred - a_true| / |a_true| * 100 (%), a_pred the learned field at the true test states;
- ``accel_err_skew`` (E[(x-mu)^3]/sigma^3), ``accel_err_pearson_sk1`` ((mean - mode)/sigma,
  mode = peak of a Gaussian KDE), ``accel_err_pearson_sk2`` (3 (mean - median)/sigma),
  ``accel_err_bowley`` ((Q3 + Q1 - 2 Q2)/(Q3 - Q1));
- ``theta_deg``: mean angle between predicted and true acceleration (degrees);
- ``radial_pct``: share of points where the prediction points outward, a . r_hat > 0 (%);
- ``loglog_slope_in`` / ``loglog_slope_out``: slope of log|a_pred| against log r for points
  whose r lies inside / outside the radii seen in training (true value -2; NaN if no points);
- ``rollout_pos_err_pct`` (mean over the orbit of |r_pred - r_true|/|r_true| * 100),
  ``rollout_pos_err_final_pct`` (after one full period), ``rollout_energy_drift``
  (|E(T) - E(0)| / |E(0)| of the predicted orbit), from each test orbit's first state,
  averaged over orbits; ``rollout_accel_err_pct``: the acceleration error along the propagated
  orbit (the learned field against gravity at the predicted positions, %; the reference code's
  definition, beside ``accel_err_mean`` at the true states); ``rollout_failed`` = 1 when the
  solver failed (values then NaN);
- ``sign_flips``, ``sign_flips_periapsis_pct``, ``outlier_orbits``, ``orbit_err_vs_e``,
  ``orbit_err_vs_a``: see :mod:`.diagnostics`;
- ``invariance_gap`` (only for a rotated/mirrored/any set whose base set is tested too):
  ``accel_err_mean`` on this set / ``accel_err_mean`` on its base set (1 = rotation and
  reflection invariant; the sets hold the same orbits, turned).
"""

from __future__ import annotations

import math

import numpy as np

TEST_METRICS: tuple[str, ...] = (
    "accel_err_mean", "accel_err_median", "accel_err_std", "accel_err_skew", "accel_err_pearson_sk1",
    "accel_err_pearson_sk2", "accel_err_bowley", "theta_deg", "radial_pct", "loglog_slope_in", "loglog_slope_out",
    "sign_flips", "sign_flips_periapsis_pct", "outlier_orbits", "orbit_err_vs_e", "orbit_err_vs_a",
    "rollout_pos_err_pct", "rollout_pos_err_final_pct", "rollout_energy_drift", "rollout_accel_err_pct",
    "rollout_failed")
"""Metric names reported per test set as ``test/<set>/<name>`` (rollout ones only with rollout)."""


def test_set_label(name: str) -> str:
    """``complex_TBP_planar_10_test`` -> ``complex_TBP_planar_10`` (the metric-name segment)."""
    return name[: -len("_test")] if name.endswith("_test") else name


def invariance_pairs(names: list[str]) -> dict[str, str]:
    """``{turned set: its base set}`` for every rotated/mirrored set in ``names`` whose base set
    is in ``names`` too (the sets that get an ``invariance_gap``)."""
    from .dataset import base_set_name

    return {n: b for n in names if (b := base_set_name(n)) is not None and b in names}


def invariance_gaps(metrics: dict[str, float], names: list[str]) -> dict[str, float]:
    """``test/<turned>/invariance_gap`` for each pair of :func:`invariance_pairs` in ``metrics``."""
    out = {}
    for turned, base in invariance_pairs(names).items():
        base_err = metrics.get(f"test/{test_set_label(base)}/accel_err_mean", math.nan)
        turned_err = metrics.get(f"test/{test_set_label(turned)}/accel_err_mean", math.nan)
        out[f"test/{test_set_label(turned)}/invariance_gap"] = turned_err / base_err if base_err > 0 else math.nan
    return out


def mode_kde(x: np.ndarray, grid_points: int = 512, max_samples: int = 5000, seed: int = 0) -> float:
    """Mode of a continuous sample: the peak of a Gaussian kernel density estimate."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, max_samples, replace=False)
    if np.ptp(x) == 0:
        return float(x[0])
    from scipy import stats  # imported here: scipy.stats costs ~0.3 s, paid at evaluation, not start-up

    lo, hi = np.quantile(x, [0.001, 0.999])
    grid = np.linspace(lo, hi, grid_points)
    return float(grid[np.argmax(stats.gaussian_kde(x)(grid))])


def distribution_stats(x: np.ndarray) -> dict[str, float]:
    """Mean, median, std (population), skewness and the Pearson/Bowley skewness measures."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {k: math.nan for k in ("mean", "median", "std", "skew", "pearson_sk1", "pearson_sk2", "bowley")}
    mean, median, std = float(np.mean(x)), float(np.median(x)), float(np.std(x))
    q1, q2, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    safe = std if std > 0 else math.nan
    return {
        "mean": mean,
        "median": median,
        "std": std,
        "skew": float(np.mean((x - mean) ** 3) / std**3) if std > 0 else math.nan,
        "pearson_sk1": (mean - mode_kde(x)) / safe,
        "pearson_sk2": 3.0 * (mean - median) / safe,
        "bowley": float((q3 + q1 - 2 * q2) / (q3 - q1)) if q3 > q1 else math.nan,
    }


def loglog_slope(r: np.ndarray, a_mag: np.ndarray) -> float:
    """Least-squares slope of log|a| against log r (NaN with fewer than 2 distinct radii)."""
    ok = np.isfinite(a_mag) & (a_mag > 0) & (r > 0)
    if ok.sum() < 2 or np.ptp(r[ok]) == 0:
        return math.nan
    return float(np.polyfit(np.log(r[ok]), np.log(a_mag[ok]), 1)[0])


def point_errors(a_pred: np.ndarray, a_true: np.ndarray, pos: np.ndarray) -> dict[str, np.ndarray]:
    """Per-point errors; arrays ``(..., 3)`` in one unit system -> ``(...)``.

    Returns ``accel_err_pct``, ``theta_deg`` and ``outward`` (bool: a_pred . r_hat > 0).
    """
    diff = np.linalg.norm(a_pred - a_true, axis=-1)
    mag_true = np.linalg.norm(a_true, axis=-1)
    mag_pred = np.linalg.norm(a_pred, axis=-1)
    cos = np.sum(a_pred * a_true, axis=-1) / np.maximum(mag_pred * mag_true, 1e-300)
    return {
        "accel_err_pct": diff / mag_true * 100.0,
        "theta_deg": np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))),
        "outward": np.sum(a_pred * pos, axis=-1) > 0,
    }


def field_metrics(a_pred: np.ndarray, a_true: np.ndarray, pos: np.ndarray,
                  train_r_range: tuple[float, float]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Summary metrics (names without prefix) and the per-point arrays, flattened.

    a_pred, a_true: ``(..., 3)`` km/s^2; pos: ``(..., 3)`` km; train_r_range: km.
    """
    pe = point_errors(a_pred, a_true, pos)
    err = pe["accel_err_pct"].reshape(-1)
    r = np.linalg.norm(pos, axis=-1).reshape(-1)
    a_mag = np.linalg.norm(a_pred, axis=-1).reshape(-1)
    inside = (r >= train_r_range[0]) & (r <= train_r_range[1])
    out = {f"accel_err_{k}": v for k, v in distribution_stats(err).items()}
    out.update({
        "theta_deg": float(np.mean(pe["theta_deg"])),
        "radial_pct": float(np.mean(pe["outward"]) * 100.0),
        "loglog_slope_in": loglog_slope(r[inside], a_mag[inside]),
        "loglog_slope_out": loglog_slope(r[~inside], a_mag[~inside]),
    })
    per_point = {"accel_err_pct": err, "theta_deg": pe["theta_deg"].reshape(-1), "r_km": r,
                 "a_pred_km_s2": a_mag}
    return out, per_point


def rollout_metrics(pred: np.ndarray, true: np.ndarray, mu: float) -> dict[str, float]:
    """Rollout errors of ``n`` orbits: pred, true ``(n, K+1, 6)`` km, km/s over one period.

    The last sample of ``true`` is the state after one full period (equal to the first).
    """
    pos_err = (np.linalg.norm(pred[..., :3] - true[..., :3], axis=-1)
               / np.linalg.norm(true[..., :3], axis=-1) * 100.0)
    r = np.linalg.norm(pred[..., :3], axis=-1)
    energy = 0.5 * np.sum(pred[..., 3:] ** 2, axis=-1) - mu / r
    drift = np.abs(energy[:, -1] - energy[:, 0]) / np.abs(energy[:, 0])
    return {"rollout_pos_err_pct": float(np.mean(pos_err)),
            "rollout_pos_err_final_pct": float(np.mean(pos_err[:, -1])),
            "rollout_energy_drift": float(np.mean(drift)),
            "rollout_failed": 0.0}


def true_anomaly_deg(states: np.ndarray, mu: float) -> np.ndarray:
    """True anomaly in [0, 360) degrees of states ``(..., 6)`` km, km/s (argument of latitude
    measured from the x axis for near-circular orbits, where perigee is undefined)."""
    r, v = states[..., :3], states[..., 3:]
    rn = np.linalg.norm(r, axis=-1, keepdims=True)
    e_vec = ((np.sum(v * v, -1, keepdims=True) - mu / rn) * r - np.sum(r * v, -1, keepdims=True) * v) / mu
    e = np.linalg.norm(e_vec, axis=-1)
    h = np.cross(r, v)
    ref = np.where((e > 1e-8)[..., None], e_vec, np.broadcast_to([1.0, 0.0, 0.0], e_vec.shape))
    cos = np.sum(ref * r, -1) / (np.linalg.norm(ref, axis=-1) * rn[..., 0])
    sin = np.sum(np.cross(ref, r) * h, -1) / (np.linalg.norm(ref, axis=-1) * rn[..., 0] * np.linalg.norm(h, axis=-1))
    return np.degrees(np.arctan2(sin, cos)) % 360.0
