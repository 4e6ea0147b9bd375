"""The visual family's artefact formats (written at the final evaluation by :mod:`.metrics`; see
:mod:`trainables.common.artifacts`).

Both come from the open-loop test rollout: each test sequence's first ``context`` frames are
encoded (the posterior mean), the latent state is rolled out under the true actions and decoded.
Horizon 0 is the last context frame (its reconstruction), horizon ``h`` the frame ``h`` samples
later. Pixel values are in [0, 1] (MSE) or ``uint8`` bytes (frames, ``(C, S, S)`` order, row 0 at
the top).
"""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

STRIP_SEQS = 3
"""Test sequences whose frames are kept in the frames artefact."""

FRAMES = ArtifactFormat(
    "visual.frames", 1, "frames.parquet",
    pa.schema([("seq", pa.int32()), ("horizon", pa.int32()), ("t", pa.float64()), ("channels", pa.int32()),
               ("size", pa.int32()), ("frame_true", pa.binary()), ("frame_pred", pa.binary())]),
    "one row per test sequence (the first few) and horizon of the open-loop rollout: time since the last context "
    "frame (s), the true and the predicted frame as uint8 bytes in (C, S, S) order")
HORIZON_CURVE = ArtifactFormat(
    "visual.horizon_curve", 1, "horizon_curve.parquet",
    pa.schema([("horizon", pa.int32()), ("t", pa.float64()), ("pixel_mse", pa.float64()),
               ("copy_last_mse", pa.float64())]),
    "the open-loop test rollout's pixel MSE at every horizon (1 .. the largest eval horizon), mean over the test "
    "sequences, and the copy-the-last-context-frame baseline's")
FORMATS = (FRAMES, HORIZON_CURVE)
