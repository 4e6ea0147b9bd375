"""The time-stepper family's artefact formats (written at the final evaluation; see
:mod:`trainables.common.artifacts`). N-body units (G = 1, the inner binary's semi-major axis 1);
times and steps in orbital periods of that binary."""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

DT_ORBIT = ArtifactFormat(
    "timestepper.dt_orbit", 1, "dt_orbit.parquet",
    pa.schema([("step", pa.int32()), ("t_periods", pa.float64()), ("r", pa.float64()),
               ("dt_learned_periods", pa.float64()), ("dt_r32_periods", pa.float64()),
               ("dt_fixed_periods", pa.float64()), ("energy_error", pa.float64())]),
    "one row per step of the learned stepper's evaluation integration (eval_orbits periods): the time t at the "
    "start of the step, r = |q0 - q1| there (the inner pair), the dt the network chose, the dt the r^(3/2) rule "
    "(eta * min sqrt(r_ij^3 / (m_i + m_j)), eta tuned to the learned stepper's maximum energy error) gives at the "
    "same state, the tuned fixed dt (both NaN when the baselines could not be tuned), and the relative energy "
    "error |E - E0| / |E0| after the step")
FORMATS = (DT_ORBIT,)
