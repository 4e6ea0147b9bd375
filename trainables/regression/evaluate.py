"""The regression family's final artefact: predictions against targets (:mod:`.artifacts`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from trainables.common.artifacts import write_artifact

from .artifacts import MAX_ROWS, PREDICTIONS
from .config import RegressionConfig
from .data import Table
from .export import export_model
from .model import RegressionMLP

OUTLIER_COLUMN = "is_outlier"


@torch.no_grad()
def write_predictions(folder: Path, model: RegressionMLP, xn: torch.Tensor, table: Table, train_rows: np.ndarray,
                      val_rows: np.ndarray, cfg: RegressionConfig) -> Path:
    """Write ``regression.predictions`` into ``folder``: the model's predictions (physical units)
    on the validation rows and on training rows, up to :data:`MAX_ROWS` table rows."""
    was_training = model.training
    model.eval()
    pred_n = torch.cat([model(chunk) for chunk in xn.split(65_536)])
    model.train(was_training)
    pred = (pred_n * model.y_std + model.y_mean).double().cpu().numpy()
    rows = _rows(train_rows, val_rows)
    val = np.isin(rows, val_rows)
    both = np.isin(rows, train_rows) & val
    split = np.where(both, "train+val", np.where(val, "val", "train")).astype(object)
    outlier = _outlier_flags(table.path, cfg)
    n, k = len(rows), len(cfg.outputs)
    clean = table.clean[rows] if table.clean is not None else np.full((n, k), np.nan)
    flags = outlier[rows] if outlier is not None else np.full(n, None, dtype=object)
    columns = {"row": np.repeat(rows.astype(np.int64), k), "split": np.repeat(split, k),
               "output": np.tile(np.array(cfg.outputs, dtype=object), n), "target": table.y[rows].reshape(-1),
               "clean": clean.reshape(-1), "prediction": pred[rows].reshape(-1),
               "residual": (pred[rows] - table.y[rows]).reshape(-1), "outlier": np.repeat(flags, k)}
    export_model(model, table.x[rows[:8]], cfg.inputs, cfg.outputs, table.path.name, folder)
    return write_artifact(folder, PREDICTIONS, columns, {"dataset": table.path.name, "loss": cfg.loss,
                                                         "outlier_flags": outlier is not None})


def _rows(train_rows: np.ndarray, val_rows: np.ndarray) -> np.ndarray:
    """Validation rows first, then training rows not among them, each evenly thinned to fit MAX_ROWS."""
    def thin(rows: np.ndarray, limit: int) -> np.ndarray:
        if len(rows) <= limit:
            return rows
        return rows[np.linspace(0, len(rows) - 1, limit).round().astype(int)]

    val = thin(np.asarray(val_rows), MAX_ROWS)
    train = thin(np.setdiff1d(train_rows, val), max(0, MAX_ROWS - len(val)))
    return np.sort(np.concatenate([val, train]))


def _outlier_flags(path: Path, cfg: RegressionConfig) -> np.ndarray | None:
    """The table's ``is_outlier`` column on the rows :func:`.data.load_table` kept (same drop rule), or None."""
    try:
        if OUTLIER_COLUMN not in pl.read_parquet_schema(path):
            return None
        cols = list(dict.fromkeys(cfg.inputs + cfg.outputs + cfg.clean()))
        df = (pl.scan_parquet(path).select([*(pl.col(c).cast(pl.Float64) for c in cols), pl.col(OUTLIER_COLUMN)])
              .drop_nulls(cols).filter(pl.all_horizontal([pl.col(c).is_not_nan() for c in cols])).collect())
    except (pl.exceptions.PolarsError, OSError):
        return None
    flags = df[OUTLIER_COLUMN].cast(pl.Boolean, strict=False)
    return flags.to_numpy().astype(object) if flags.null_count() < len(flags) else None
