"""The two-body family's artefact formats (written at the final evaluation; see
:mod:`trainables.common.artifacts`). Positions in km, accelerations in km/s^2, errors in %."""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

PER_POINT = ArtifactFormat(
    "twobody.per_point_errors", 1, "per_point_errors.parquet",
    pa.schema([("dataset", pa.string()), ("orbit_id", pa.int32()), ("sample", pa.int32()), ("r_km", pa.float64()),
               ("r_over_a", pa.float64()), ("true_anomaly_deg", pa.float64()), ("accel_err_pct", pa.float64()),
               ("theta_deg", pa.float64()), ("a_pred_km_s2", pa.float64()), ("a_true_km_s2", pa.float64())]),
    "one row per test point: |a_pred - a_true| / |a_true| (%), angle between them (deg), |a| (km/s^2)")
ROLLOUT = ArtifactFormat(
    "twobody.rollout", 1, "rollout.parquet",
    pa.schema([("dataset", pa.string()), ("orbit_id", pa.int32()), ("sample", pa.int32()),
               ("x_km", pa.float64()), ("y_km", pa.float64()), ("z_km", pa.float64()),
               ("x_pred_km", pa.float64()), ("y_pred_km", pa.float64()), ("z_pred_km", pa.float64())]),
    "true and predicted positions (km) of up to 8 test orbits per set, one period from the first state")
FIELD_GRID = ArtifactFormat(
    "twobody.field_grid", 1, "field_grid.parquet",
    pa.schema([("x_km", pa.float64()), ("y_km", pa.float64()), ("r_km", pa.float64()),
               ("a_pred_km_s2", pa.float64()), ("a_true_km_s2", pa.float64()),
               ("residual_km_s2", pa.float64()), ("err_pct", pa.float64())]),
    "the learned field on a grid of the orbital plane, each point on its prograde circular orbit")
TRAINING_ORBITS = ArtifactFormat(
    "twobody.training_orbits", 1, "training_orbits.parquet",
    pa.schema([("orbit_id", pa.int32()), ("x_km", pa.float64()), ("y_km", pa.float64())]),
    "(x, y) km of up to 20 training orbits")
PER_ORBIT = ArtifactFormat(
    "twobody.per_orbit", 1, "per_orbit_errors.parquet",
    pa.schema([("dataset", pa.string()), ("orbit_id", pa.int32()), ("e", pa.float64()), ("a_km", pa.float64()),
               ("accel_err_mean", pa.float64()), ("accel_err_max", pa.float64()), ("sign_flips", pa.int32()),
               ("outlier", pa.bool_())]),
    "one row per test orbit: elements, mean and max acceleration error (%), sign flips of the learned radial "
    "acceleration, whether it is a 1.5 x IQR outlier of its set")
HEAD_OUTPUTS = ArtifactFormat(
    "twobody.head_outputs", 1, "head_outputs.parquet",
    pa.schema([("dataset", pa.string()), ("orbit_id", pa.int32()), ("sample", pa.int32()),
               ("true_anomaly_deg", pa.float64()), ("m0", pa.float64()), ("a_radial_km_s2", pa.float64()),
               ("inward_angle_deg", pa.float64()), ("accel_err_pct", pa.float64()), ("sign_flip", pa.bool_())]),
    "along the first 8 orbits of each test set: the MLP's raw first output m0 (before the head's link: the "
    "magnitude of a 4D head), the "
    "learned radial acceleration (km/s^2, > 0 outward), its angle from straight inward (deg), the error (%), "
    "whether the radial acceleration changed sign since the previous sample (cyclically)")
FORMATS = (PER_POINT, ROLLOUT, FIELD_GRID, TRAINING_ORBITS, PER_ORBIT, HEAD_OUTPUTS)
