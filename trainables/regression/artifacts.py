"""The regression family's artefact formats (written at the final report by
:func:`.evaluate.write_predictions`; see :mod:`trainables.common.artifacts`)."""

from __future__ import annotations

import pyarrow as pa

from trainables.common.artifacts import ArtifactFormat

MAX_ROWS = 100_000
"""At most this many table rows in the artefact: every validation row first (an even subset when
there are more), then training rows (an even subset) up to the limit."""

PREDICTIONS = ArtifactFormat(
    "regression.predictions", 1, "predictions.parquet",
    pa.schema([("row", pa.int64()), ("split", pa.string()), ("output", pa.string()), ("target", pa.float64()),
               ("clean", pa.float64()), ("prediction", pa.float64()), ("residual", pa.float64()),
               ("outlier", pa.bool_())]),
    "one row per table row and output column, physical units: row (index among the rows used, after nulls "
    "and NaN were dropped), split (train, val, or train+val with validate_on_train), the noisy target, the "
    "clean truth (NaN when the table has none), the prediction, residual = prediction - target, and the "
    "table's outlier flag (column is_outlier, as the demo marks them; null when the table has none)")
FORMATS = (PREDICTIONS,)
