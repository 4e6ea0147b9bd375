"""What a sweep cost, and what early stopping saved.

Trial-seconds come from each run's ``trial_seconds`` tag; the budget reached from its
``metrics.<time_attr>`` (the scheduler's time attribute, ``step`` by default). A run's seconds
per unit of budget times the full budget (ASHA's ``max_t``, else the largest budget a finished
run reached) is what it would have cost without early stopping; the full grid of the sweep's
discrete parameters costs its number of configurations times the mean cost of a full run.
"""

from __future__ import annotations

import math

import polars as pl

from .source import outcome, param_value


def cost(runs: pl.DataFrame, spec: dict[str, str]) -> tuple[pl.DataFrame, dict[str, float]]:
    """``(table of runs and trial-seconds by state, totals)``; totals has ``spent_s``,
    ``budget``, ``s_per_unit``, ``without_early_stopping_s``, ``saved_s``, ``grid_configs``
    and ``full_grid_s`` (NaN where it cannot be known)."""
    time_attr = spec.get("scheduler.time_attr", "step")
    column = f"metrics.{time_attr}" if f"metrics.{time_attr}" in runs.columns else "metrics.training_iteration"
    rows = []
    for row in runs.iter_rows(named=True):
        seconds = float(row.get("tags.trial_seconds") or 0.0)
        reached = row.get(column)
        rows.append({"state": outcome(row), "seconds": seconds,
                     "reached": float(reached) if reached is not None else math.nan})
    per_run = pl.DataFrame(rows, schema={"state": pl.String, "seconds": pl.Float64, "reached": pl.Float64})
    table = (per_run.group_by("state").agg(pl.len().alias("runs"), pl.col("seconds").sum().alias("trial_s"))
             .sort("trial_s", descending=True))
    spent = float(per_run["seconds"].sum())
    max_t = param_value(spec.get("scheduler.max_t"))
    finished = per_run.filter(pl.col("state") == "finished")["reached"].drop_nans()
    budget = float(max_t) if spec.get("scheduler.type") == "asha" and max_t else (
        float(finished.max()) if finished.len() else math.nan)
    ok = per_run.filter((pl.col("reached") > 0) & pl.col("reached").is_not_nan() & (pl.col("state") != "failed"))
    s_per_unit = float((ok["seconds"] / ok["reached"]).mean()) if ok.height else math.nan
    without = 0.0
    for state, seconds, reached in per_run.iter_rows():
        full = state == "stopped early" and reached > 0 and budget > reached
        without += seconds / reached * budget if full else seconds
    configs = grid_configs(spec)
    return table, {"spent_s": spent, "budget": budget, "s_per_unit": s_per_unit,
                   "without_early_stopping_s": without, "saved_s": without - spent,
                   "grid_configs": float(configs) if configs else math.nan,
                   "full_grid_s": configs * s_per_unit * budget if configs else math.nan}


def grid_configs(spec: dict[str, str]) -> int | None:
    """Configurations of the full grid over the spec's swept parameters (None when one is
    continuous: ``uniform`` or ``loguniform``)."""
    size = 1
    for key, value in spec.items():
        if not key.startswith("space.") or key.endswith(".when") or key.count(".") != 2:
            continue
        kind = key.rsplit(".", 1)[1]
        args = param_value(value)
        if kind in ("uniform", "loguniform"):
            return None
        if kind in ("choice", "grid") and isinstance(args, list):
            size *= len(args)
        elif kind == "randint" and isinstance(args, list):
            size *= int(args[1]) - int(args[0])
        elif kind == "qrandint" and isinstance(args, list):
            size *= (int(args[1]) - int(args[0])) // int(args[2]) + 1
    return size
