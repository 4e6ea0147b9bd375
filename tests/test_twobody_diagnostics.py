"""Two-body diagnostics (trainables/twobody/diagnostics.py): sign flips counted and located,
per-orbit breakdowns with Tukey outliers, on hand-made cases and on a real evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trainables.common.artifacts import read_format
from trainables.common.reporter import LocalReporter
from trainables.twobody.diagnostics import orbit_diagnostics, sign_flips, tukey_outliers
from trainables.twobody.train import run


def test_sign_flips_are_counted_cyclically_and_located() -> None:
    a_r = np.array([[-1.0, -1, 1, 1, -1, -1], [1.0, -1, -1, -1, -1, -1]])
    flips = sign_flips(a_r)
    assert flips.tolist() == [[False, False, True, False, True, False], [True, True, False, False, False, False]]
    nu = np.tile(np.array([0.0, 30, 120, 180, 240, 330]), (2, 1))
    pos = np.zeros((2, 6, 3))
    pos[..., 0] = 1.0                                         # r_hat = x: a_r is the x component
    a_pred = np.zeros((2, 6, 3))
    a_pred[..., 0] = a_r
    err = np.array([[1.0] * 6, [3.0] * 6])
    metrics, cols = orbit_diagnostics(err, a_pred, pos, nu, np.array([0.1, 0.5]), np.array([7000.0, 9000.0]))
    assert metrics["sign_flips"] == 2.0                       # 2 per orbit
    assert metrics["sign_flips_periapsis_pct"] == 50.0        # at 0 and 30 deg yes, at 120 and 240 no
    assert cols["sign_flips"].tolist() == [2, 2] and cols["accel_err_mean"].tolist() == [1.0, 3.0]
    assert math.isnan(metrics["orbit_err_vs_e"])              # two orbits: no rank correlation


def test_tukey_fences() -> None:
    x = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 10.0, -7.0])
    assert tukey_outliers(x).tolist() == [False, False, False, False, False, True, True]
    assert not tukey_outliers(np.ones(5)).any()


def test_a_real_evaluation_writes_the_breakdowns(tmp_path: Path) -> None:
    cfg = {"train_dataset": "complex_TBP_planar_1_train", "test_datasets": ["complex_TBP_planar_10_test"],
           "datasets_root": str(tmp_path / "data"), "width": 16, "segment_length": 10, "batch_size": 16,
           "steps": 20, "report_every": 10, "rollout": True}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run(cfg, reporter)
    orbits = pl.read_parquet(reporter.artifact_dir() / "per_orbit_errors.parquet")
    assert read_format(reporter.artifact_dir() / "per_orbit_errors.parquet") == ("twobody.per_orbit", 1)
    assert orbits.height == 10 and orbits["e"].is_between(0, 1).all() and (orbits["a_km"] > 6378).all()
    points = pl.read_parquet(reporter.artifact_dir() / "per_point_errors.parquet")
    means = points.group_by("orbit_id").agg(pl.col("accel_err_pct").mean()).sort("orbit_id")
    assert np.allclose(means["accel_err_pct"], orbits.sort("orbit_id")["accel_err_mean"])
    prefix = "test/complex_TBP_planar_10/"
    assert final[prefix + "outlier_orbits"] == orbits["outlier"].sum()
    assert final[prefix + "sign_flips"] == pytest.approx(orbits["sign_flips"].mean())
    assert -1 <= final[prefix + "orbit_err_vs_e"] <= 1 and final[prefix + "rollout_accel_err_pct"] > 0
    heads = pl.read_parquet(reporter.artifact_dir() / "head_outputs.parquet")
    assert heads["orbit_id"].n_unique() == 8 and heads["inward_angle_deg"].is_between(0, 180).all()
    flips = heads.group_by("orbit_id").agg(pl.col("sign_flip").sum()).sort("orbit_id")
    per = orbits.filter(pl.col("orbit_id").is_in(flips["orbit_id"].to_list())).sort("orbit_id")
    assert flips["sign_flip"].to_list() == per["sign_flips"].to_list()
    outward = (heads["a_radial_km_s2"] > 0).to_numpy()
    assert np.array_equal(outward, (heads["inward_angle_deg"] > 90).to_numpy())
