"""The tables users made by hand: generalisation per run, parameter diffs, failure triage, cost."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import polars as pl

from .source import derived_params, varying_params

GENERALISATION = {"mean": "accel_err_mean", "theta_deg": "theta_deg", "radial_pct": "radial_pct",
                  "skewness": "accel_err_skew", "pearson_sk1": "accel_err_pearson_sk1",
                  "pearson_sk2": "accel_err_pearson_sk2", "bowley": "accel_err_bowley"}
"""Column name in the table -> metric name under ``test/<set>/``."""
LOWER_IS_BETTER = {"mean", "theta_deg", "radial_pct"}
"""Columns with a best value (the skewness measures describe a shape: none is best)."""


LOWER_PATTERN = re.compile(r"(rmse|err|drift|loss)", re.IGNORECASE)
HIGHER_PATTERN = re.compile(r"^vpt", re.IGNORECASE)
"""Flat ``test/<metric>`` names with a best value: errors are lower-is-better, valid prediction
times higher-is-better; other metrics (exponents, ratios) describe and have no best."""


def test_sets(runs: pl.DataFrame) -> list[str]:
    """The test sets the runs were evaluated on, from their ``metrics.test/<set>/<metric>`` columns."""
    sets = {c.split("/")[1] for c in runs.columns if c.startswith("metrics.test/") and c.count("/") >= 2}
    return sorted(sets, key=lambda s: (len(s), s))


def flat_test_metrics(runs: pl.DataFrame) -> list[str]:
    """Test metrics without a set (``metrics.test/<metric>``), in a stable order."""
    return sorted(c.removeprefix("metrics.test/") for c in runs.columns
                  if c.startswith("metrics.test/") and c.count("/") == 1)


def declared_columns(runs: pl.DataFrame, patterns: list[str]) -> list[str]:
    """Metric names (without ``metrics.``) matching the family's declared ``fnmatch`` patterns, in
    pattern order, each once."""
    names = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")]
    out: list[str] = []
    for pattern in patterns:
        out += sorted((n for n in names if fnmatch.fnmatchcase(n, pattern) and n not in out), key=_natural)
    return out


def _natural(name: str) -> list[Any]:
    """Sort key that puts ``h10`` before ``h100`` and ``x0.5`` before ``x2``."""
    return [float(t) if re.fullmatch(r"\d+(\.\d+)?", t) else t for t in re.split(r"(\d+(?:\.\d+)?)", name)]


def generalisation(runs: pl.DataFrame, sort: str | None = None, metric: str | None = None,
                   mode: str = "min", declared: list[str] | None = None,
                   columns: list[str] | None = None) -> tuple[pl.DataFrame, dict[str, float]]:
    """One row per run: run id, trial, the parameters that differ between runs, the sweep's
    ``metric`` (last value), then the family's results: per test set ``<set>/<column>`` for each
    GENERALISATION column where runs report per-set metrics (two-body), else the metrics matching
    the family's ``declared`` patterns (``test/`` dropped from their names), else every flat test
    metric. Columns no run reports are left out; ``columns`` (names or patterns) keeps only those.
    Sorted by the sweep's metric (best first, ties by run id) unless ``sort`` names a column.
    Returns the table and the best value of each column that has one."""
    params = varying_params(runs)
    cols: list[Any] = [pl.col("run_id").str.slice(0, 8).alias("run"), pl.col("tags.trial_id").alias("trial")
                       if "tags.trial_id" in runs.columns else pl.lit(None).alias("trial")]
    cols += [pl.col(p).alias(p.removeprefix("params.")) for p in params]
    has_metric = metric is not None and f"metrics.{metric}" in runs.columns
    metric_name = str(metric).removeprefix("test/")
    if has_metric:
        cols.append(pl.col(f"metrics.{metric}").alias(metric_name))
        cols += _spread(runs, str(metric), metric_name)
    shown = {metric_name}
    flat: list[str] = []
    if test_sets(runs):
        for s in test_sets(runs):
            for name, key in GENERALISATION.items():
                column = f"metrics.test/{s}/{key}"
                cols.append((pl.col(column) if column in runs.columns else pl.lit(None, pl.Float64)).alias(f"{s}/{name}"))
                cols += _spread(runs, f"test/{s}/{key}", f"{s}/{name}")
    else:
        names = declared_columns(runs, declared) if declared else [f"test/{m}" for m in flat_test_metrics(runs)]
        for n in names:
            short = n.removeprefix("test/")
            if short not in shown:
                shown.add(short)
                flat.append(short)
                cols.append(pl.col(f"metrics.{n}").alias(short))
    table = runs.select(cols)
    keep = ["run", "trial", *(p.removeprefix("params.") for p in params)]
    table = table.select([c for c in table.columns if c in keep or _reported(table[c])])
    if columns:
        wanted = [c for c in table.columns[2:] if any(fnmatch.fnmatchcase(c, w) for w in columns)]
        if not wanted:
            from .errors import AnalysisError

            raise AnalysisError(f"--columns: none of {', '.join(columns)} matches a column; columns: "
                                f"{', '.join(table.columns)}")
        table = table.select(["run", "trial", *wanted])
    descending = False
    if sort is None and has_metric and metric_name in table.columns:
        sort, descending = metric_name, mode == "max"
    elif sort is None and test_sets(runs):
        sort = f"{test_sets(runs)[0]}/mean"
    elif sort is not None:
        descending = bool(HIGHER_PATTERN.search(sort))
    if sort is not None:
        if sort not in table.columns:
            from .errors import AnalysisError

            raise AnalysisError(f"--sort: no column {sort!r}; columns: {', '.join(table.columns)}")
        table = table.sort([sort, "run"], nulls_last=True, descending=[descending, False])
    best: dict[str, float] = {}
    if has_metric and metric_name in table.columns and table[metric_name].drop_nans().drop_nulls().len():
        values = table[metric_name].drop_nans().drop_nulls()
        best[metric_name] = values.max() if mode == "max" else values.min()
    for c in table.columns:
        values = table[c].drop_nans().drop_nulls() if table[c].dtype.is_float() else None
        if values is None or not values.len() or c == metric_name:
            continue
        if "/" in c and c.split("/", 1)[1] in LOWER_IS_BETTER or (c in flat and LOWER_PATTERN.search(c)
                                                                   and not c.endswith("_true")):
            best[c] = values.min()
        elif c in flat and HIGHER_PATTERN.search(c):
            best[c] = values.max()
    return table, best


def _spread(runs: pl.DataFrame, metric: str, alias: str) -> list[pl.Expr]:
    """The column ``<alias> ±std`` when runs trained seed replicates (they report ``<metric>_std``
    beside the mean over their replicates), else nothing."""
    column = f"metrics.{metric}_std"
    return [pl.col(column).alias(f"{alias} ±std")] if column in runs.columns else []


def _reported(column: pl.Series) -> bool:
    """Whether any run has a value in ``column`` (NaN counts as a value only for non-floats)."""
    values = column.drop_nulls()
    return bool(values.drop_nans().len() if values.dtype.is_float() else values.len())


def diff(runs: pl.DataFrame, parent_tags: dict[str, str] | None = None) -> pl.DataFrame:
    """Rows: the parameters (not those derived from the config), dataset hashes, code commit, versions
    and device that differ between ``runs`` (N-way); columns: one per run (its short id / trial)."""
    keys = [c for c in runs.columns if c.startswith(("params.", "tags.dynsweep.version.")) or c.endswith("_sha256")
            or c in ("tags.mlflow.source.git.commit", "tags.device")]
    derived = derived_params(runs)
    differing = [k for k in keys if k not in derived and runs[k].n_unique() > 1]
    names = [f"{r[:8]}" + (f" ({t})" if t else "") for r, t in
             zip(runs["run_id"], runs["tags.trial_id"] if "tags.trial_id" in runs.columns else [None] * len(runs))]
    data: dict[str, list[Any]] = {"key": [k.split(".", 1)[1] for k in differing]}
    for i, name in enumerate(names):
        data[name] = [runs[k][i] for k in differing]
    return pl.DataFrame(data, schema={"key": pl.String, **{n: pl.String for n in names}})


def sweep_variation(runs: pl.DataFrame) -> pl.DataFrame:
    """The parameters that vary within a sweep, with their values and how many runs had each."""
    rows = []
    for p in varying_params(runs):
        counts = runs.group_by(p).len().sort(p, nulls_last=True)
        values = ", ".join(f"{v}({n})" for v, n in counts.iter_rows())
        rows.append({"param": p.removeprefix("params."), "values": counts.height, "runs per value": values})
    return pl.DataFrame(rows, schema={"param": pl.String, "values": pl.Int64, "runs per value": pl.String})


def signature(message: str | None) -> str:
    """A failure message with its numbers, ids and paths blanked, so that alike failures group."""
    text = (message or "").strip().splitlines()[0] if message else ""
    text = re.sub(r"(/[^\s:'\"]+)+", "<path>", text)
    text = re.sub(r"0x[0-9a-fA-F]+|[0-9a-f]{8,}", "<id>", text)
    return re.sub(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", "#", text)[:160]


def failures(runs: pl.DataFrame) -> pl.DataFrame:
    """Failed runs grouped by class and message signature: how many, trial-seconds lost, and the
    parameter values every run of the group shares (among the parameters that vary in the sweep)."""
    params = varying_params(runs)
    failed = runs.filter(pl.col("status") == "FAILED")
    if failed.is_empty():
        return pl.DataFrame(schema={"class": pl.String, "signature": pl.String, "runs": pl.Int64,
                                    "trial_s": pl.Float64, "shared parameters": pl.String})
    cls = pl.col("tags.failure_class") if "tags.failure_class" in failed.columns else pl.lit("unknown")
    msg = failed["tags.failure_message"] if "tags.failure_message" in failed.columns else [None] * failed.height
    seconds = (pl.col("tags.trial_seconds").cast(pl.Float64) if "tags.trial_seconds" in failed.columns
               else pl.lit(0.0))
    failed = failed.with_columns(cls.alias("_class"), pl.Series("_sig", [signature(m) for m in msg]),
                                 seconds.alias("_s"))
    rows = []
    for (klass, sig), group in failed.group_by(["_class", "_sig"], maintain_order=True):
        shared = [f"{p.removeprefix('params.')}={group[p][0]}" for p in params
                  if group[p].n_unique() == 1 and group[p][0] is not None]
        rows.append({"class": klass, "signature": sig, "runs": group.height, "trial_s": float(group["_s"].sum()),
                     "shared parameters": ", ".join(shared) or "-"})
    return pl.DataFrame(rows).sort(["runs", "trial_s"], descending=True)
