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
FORMATS = (PER_POINT, ROLLOUT, FIELD_GRID, TRAINING_ORBITS)
