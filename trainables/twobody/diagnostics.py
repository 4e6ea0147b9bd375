"""Diagnostics of a learned field along the test orbits, beyond the summary metrics.

Per test set (``test/<set>/...``):

- ``sign_flips``: sign changes of the learned radial acceleration a . r_hat between consecutive
  samples of an orbit (cyclically: an orbit is one whole period), mean per orbit. True gravity is
  inward everywhere, so every flip enters or leaves a stretch of repulsive field;
- ``sign_flips_periapsis_pct``: the share of those flips within 45 degrees of true anomaly of
  periapsis (NaN without flips): where the field is strongest and changes fastest;
- ``outlier_orbits``: orbits whose mean error lies beyond 1.5 x IQR of the set's per-orbit means
  (Tukey's fences, either side);
- ``orbit_err_vs_e``, ``orbit_err_vs_a``: Spearman rank correlation of an orbit's mean error with
  its eccentricity and its semi-major axis (NaN for fewer than 3 orbits or a constant element).

The per-orbit table (``twobody.per_orbit`` artefact) holds every orbit's elements, mean and
maximum error, flips and outlier flag; ``twobody.head_outputs`` holds, for the first orbits of each
set, the MLP's own outputs along the orbit: the magnitude output ``m0`` (heads that have one) and
the direction as the angle of the learned acceleration from -r_hat (0 = straight inward).
"""

from __future__ import annotations

import math

import numpy as np

PERIAPSIS_DEG = 45.0
HEAD_ORBITS = 8
"""Orbits per test set whose head outputs are kept."""

DIAGNOSTIC_METRICS = ("sign_flips", "sign_flips_periapsis_pct", "outlier_orbits", "orbit_err_vs_e", "orbit_err_vs_a")


def radial_component(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """a . r_hat for ``a, pos (..., 3)`` -> ``(...)`` (positive: outward)."""
    return np.sum(a * pos, axis=-1) / np.linalg.norm(pos, axis=-1)


def sign_flips(a_radial: np.ndarray) -> np.ndarray:
    """Where the radial component changes sign from the previous sample of its orbit, cyclically:
    ``a_radial (n, k)`` -> bool ``(n, k)`` (True at the sample after the change)."""
    outward = a_radial > 0
    return outward != np.roll(outward, 1, axis=1)


def tukey_outliers(x: np.ndarray) -> np.ndarray:
    """Values beyond 1.5 x IQR outside the quartiles (either side) -> bool, like ``x``."""
    q1, q3 = np.percentile(x, [25, 75])
    return (x < q1 - 1.5 * (q3 - q1)) | (x > q3 + 1.5 * (q3 - q1))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def orbit_diagnostics(err_pct: np.ndarray, a_pred: np.ndarray, pos: np.ndarray, nu_deg: np.ndarray,
                      elements_e: np.ndarray, elements_a_km: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Summary metrics (names without prefix) and the per-orbit columns of one test set.

    Args:
        err_pct: per-point acceleration error ``(n, k)`` %; a_pred, pos: ``(n, k, 3)`` (any one unit
            system); nu_deg: true anomaly ``(n, k)``; elements_e, elements_a_km: ``(n,)``.
    """
    flips = sign_flips(radial_component(a_pred, pos))
    near = np.minimum(nu_deg, 360.0 - nu_deg) <= PERIAPSIS_DEG
    per_orbit = err_pct.mean(axis=1)
    outliers = tukey_outliers(per_orbit)
    total = int(flips.sum())
    metrics = {"sign_flips": float(flips.sum(axis=1).mean()),
               "sign_flips_periapsis_pct": 100.0 * float((flips & near).sum()) / total if total else math.nan,
               "outlier_orbits": float(outliers.sum()),
               "orbit_err_vs_e": _spearman(elements_e, per_orbit),
               "orbit_err_vs_a": _spearman(elements_a_km, per_orbit)}
    columns = {"e": elements_e.astype(float), "a_km": elements_a_km.astype(float), "accel_err_mean": per_orbit,
               "accel_err_max": err_pct.max(axis=1), "sign_flips": flips.sum(axis=1).astype(np.int32),
               "outlier": outliers}
    return metrics, columns


def inward_angle_deg(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Angle (degrees) between ``a`` and -r_hat: 0 for a field pointing straight at the centre."""
    cos = -radial_component(a, pos) / np.maximum(np.linalg.norm(a, axis=-1), 1e-300)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
