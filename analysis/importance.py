"""Which parameters matter: Optuna's importance evaluators over a sweep's completed trials,
and the marginal mean of the metric per value of each parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .errors import AnalysisError
from .source import outcome, param_value, ranked, varying_params

BINS = 4
"""Numeric parameters with more distinct values than this are grouped into quantile bins."""


def distributions(spec: dict[str, str], runs: pl.DataFrame) -> dict[str, Any]:
    """Optuna distributions of the swept parameters: from the sweep's spec (the parent run's
    ``space.<name>.<kind>`` params) where it says, else from the values the runs took."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for column in varying_params(runs):
        name = column.removeprefix("params.")
        kind = next((k.split(".")[-1] for k in spec if k.startswith(f"space.{name}.") and not k.endswith(".when")),
                    None)
        args = param_value(spec.get(f"space.{name}.{kind}")) if kind else None
        values = [param_value(v) for v in runs[column].drop_nulls()]
        if kind in ("uniform", "loguniform") and isinstance(args, list):
            out[name] = FloatDistribution(float(args[0]), float(args[1]), log=kind == "loguniform")
        elif kind in ("randint", "qrandint") and isinstance(args, list):
            high = int(args[1]) - 1 if kind == "randint" else int(args[1])
            out[name] = IntDistribution(int(args[0]), high, step=int(args[2]) if kind == "qrandint" else 1)
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and kind is None:
            out[name] = FloatDistribution(float(min(values)), float(max(values)))
        else:
            out[name] = CategoricalDistribution(sorted({_hashable(v) for v in values}, key=str))
    return out


def _hashable(value: Any) -> Any:
    return str(value) if isinstance(value, (list, dict)) else value


def completed(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Runs whose metric is a result: finished, or stopped early by the scheduler (their last value)."""
    column = f"metrics.{metric}"
    if column not in runs.columns:
        metrics = sorted(c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics."))
        raise AnalysisError(f"--metric: no run reported {metric!r}; metrics: {', '.join(metrics)}")
    return runs.filter(ranked(runs) & pl.col(column).is_not_null() & pl.col(column).is_not_nan())


def quantile_bins(values: np.ndarray, bins: int = BINS) -> list[str]:
    """Each value's quantile bin as a label ``lo..hi`` (3 significant digits)."""
    edges = np.unique(np.nanquantile(values, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return [f"{edges[i]:.3g}..{edges[i + 1]:.3g}" if not np.isnan(v) else "<absent>" for i, v in zip(index, values)]


def importances(runs: pl.DataFrame, spec: dict[str, str], metric: str, mode: str = "min",
                evaluator: str = "fanova") -> dict[str, float]:
    """Normalised importance per parameter (sums to 1) over the completed runs."""
    import optuna

    done = completed(runs, metric)
    dists = distributions(spec, runs)
    if done.height < 2 or not dists:
        raise AnalysisError(f"importance needs at least 2 completed runs with {metric} and a swept parameter "
                          f"(found {done.height} runs, {len(dists)} parameters)")
    study = build_study(done, dists, metric, mode, all_complete=True)
    common = [n for n in dists if all(n in t.params for t in study.trials)]
    if not common:
        raise AnalysisError("no swept parameter is present in every completed run (conditional parameters only)")
    chosen = (optuna.importance.PedAnovaImportanceEvaluator() if evaluator == "ped-anova"
              else optuna.importance.FanovaImportanceEvaluator(seed=0))
    return optuna.importance.get_param_importances(study, evaluator=chosen, params=common)


def build_study(runs: pl.DataFrame, dists: dict[str, Any], metric: str, mode: str, storage: Any = None,
                name: str = "dynsweep", all_complete: bool = False) -> Any:
    """An Optuna study holding ``runs`` as trials, each with its swept parameters: finished runs as
    COMPLETE with their metric, stopped-early and interrupted ones as PRUNED (their last value as
    an intermediate value), failed ones as FAIL; with ``all_complete`` every run is COMPLETE with
    its last value (for importance over the ranked runs). In ``storage`` (URL) or in memory."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize", storage=storage,
                                study_name=name)
    column = f"metrics.{metric}"
    for row in runs.iter_rows(named=True):
        params = {}
        for pname, dist in dists.items():
            value = _hashable(param_value(row.get(f"params.{pname}")))
            if value is None:
                continue
            if isinstance(dist, optuna.distributions.IntDistribution):
                value = int(value)
            elif isinstance(dist, optuna.distributions.FloatDistribution):
                value = float(value)
            params[pname] = value
        word = outcome(row)
        value = row.get(column)
        has_value = value is not None and not (isinstance(value, float) and np.isnan(value))
        state = (optuna.trial.TrialState.COMPLETE if all_complete
                 else optuna.trial.TrialState.FAIL if word == "failed" or not has_value and word == "finished"
                 else optuna.trial.TrialState.PRUNED if word in ("stopped early", "interrupted")
                 else optuna.trial.TrialState.COMPLETE)
        step = row.get("metrics.step")
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params},
            value=value if state == optuna.trial.TrialState.COMPLETE else None, state=state,
            intermediate_values={int(step or 0): value} if has_value and state == optuna.trial.TrialState.PRUNED
            else None,
            user_attrs={"mlflow_run_id": row["run_id"], "trial_id": row.get("tags.trial_id") or ""}))
    return study


def export_study(runs: pl.DataFrame, spec: dict[str, str], metric: str, mode: str, path: Path, name: str) -> int:
    """Write the sweep's runs as an Optuna study into the SQLite file ``path`` (replaced atomically),
    for ``optuna-dashboard sqlite:///<path>``; returns the number of trials."""
    import optuna

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp.resolve()}")
    study = build_study(runs, distributions(spec, runs), metric, mode, storage, name)
    count = len(study.trials)
    storage.engine.dispose()
    tmp.replace(path)
    return count


def marginals(runs: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Mean, std and count of the metric per value of each swept parameter (numeric parameters
    with many values in quantile bins) over the completed runs."""
    done = completed(runs, metric)
    column = f"metrics.{metric}"
    parts = []
    for p in varying_params(runs):
        values = [param_value(v) for v in done[p]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
        if numeric and len({v for v in values if v is not None}) > BINS:
            key = pl.Series(quantile_bins(np.array([np.nan if v is None else float(v) for v in values])))
        else:
            key = done[p].fill_null("<absent>")
        grouped = (done.with_columns(key.alias("value")).group_by("value", maintain_order=True)
                   .agg(pl.col(column).mean().alias("mean"), pl.col(column).std().alias("std"),
                        pl.len().alias("runs")).sort("value"))
        parts.append(grouped.with_columns(pl.lit(p.removeprefix("params.")).alias("param"))
                     .select("param", "value", "mean", "std", "runs"))
    return pl.concat(parts) if parts else pl.DataFrame(schema={"param": pl.String, "value": pl.String,
                                                                "mean": pl.Float64, "std": pl.Float64,
                                                                "runs": pl.UInt32})
