"""The latent ODE family's artefact format (written at the final evaluation by :mod:`.metrics`)."""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

SHOWN = 3
"""Test trajectories kept in the artefact (evenly spread over the test set: other orbits or
simulations, not the windows of the first one)."""

TRAJECTORIES = ArtifactFormat(
    "latentode.trajectories", 2, "trajectories.parquet",
    pa.schema([("seq", pa.int32()), ("t", pa.float64()), ("channel", pa.string()), ("unit", pa.string()),
               ("kind", pa.string()), ("value", pa.float64()), ("context_end", pa.float64()), ("t_unit", pa.string())]),
    "one row per test trajectory (a few, spread over the test set), time from the window's start (in t_unit: s, or "
    "TU for two-body), channel and kind: 'observed' "
    "(the noisy observations, context and forecast), 'true' (the noise-free trajectory on its grid) and "
    "'predicted' (the model's decoded trajectory on that grid, from the context observations only); value in the "
    "channel's unit; context_end: where the context window ends (t_unit)")
FORMATS = (TRAJECTORIES,)
