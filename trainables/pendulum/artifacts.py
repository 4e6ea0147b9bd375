"""The double-pendulum family's artefact formats (written at the final evaluation; see
:mod:`trainables.common.artifacts`). Angles in rad (as the model and the data give them, not
wrapped), angular velocities in rad/s, times in s and in Lyapunov times of the true system,
energies in J."""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

ROLLOUT = ArtifactFormat(
    "pendulum.rollout", 1, "rollout.parquet",
    pa.schema([("sim_id", pa.int32()), ("step", pa.int32()), ("t_s", pa.float64()), ("t_lyapunov", pa.float64()),
               ("theta1_true", pa.float64()), ("theta1_pred", pa.float64()),
               ("theta2_true", pa.float64()), ("theta2_pred", pa.float64()),
               ("omega1_true", pa.float64()), ("omega1_pred", pa.float64()),
               ("omega2_true", pa.float64()), ("omega2_pred", pa.float64()),
               ("nrmse", pa.float64()), ("vpt_threshold", pa.float64()),
               ("energy_true_j", pa.float64()), ("energy_pred_j", pa.float64()),
               ("energy_drift_true_rel", pa.float64()), ("energy_drift_pred_rel", pa.float64())]),
    "one row per step of each open-loop test rollout (step 1 = the first predicted state, t_s = step * dt): "
    "true and predicted states, the normalised RMSE of the step (6-feature encoding, see metrics), the VPT "
    "threshold, t_lyapunov = t_s * the true largest Lyapunov exponent, total energy of both states (J) and its "
    "signed change since the last input state over g ((m1 + m2) l1 + m2 l2)")
LYAPUNOV = ArtifactFormat(
    "pendulum.lyapunov", 1, "lyapunov.parquet",
    pa.schema([("system", pa.string()), ("start", pa.int32()), ("t_s", pa.float64()), ("exponent", pa.float64())]),
    "running estimates (1/s) of the largest Lyapunov exponent, system 'true' or 'model', per start state")
FORMATS = (ROLLOUT, LYAPUNOV)
