"""``dynsweep plot <sweep> KIND``: the figures users drew by hand, from MLflow data.

Every figure is drawn from metrics, metric histories, parameters, or the Parquet artefacts a
family writes at its final evaluation (``checkpoint/artifacts/*.parquet`` of a run): nothing
here loads a model. Kinds:

- ``heatmap``: mean of a metric over two parameters (e.g. training orbits x segment length);
- ``box``: per-point acceleration error (%) per run, from ``per_point_errors.parquet``;
- ``curves``: a metric (default the loss) against step for the selected runs;
- ``loglog``: |a_pred| against r with the exact slope -2 (mu / r^2) and the training radii;
- ``trajectory``: predicted against true test orbits (``rollout.parquet``);
- ``field``: |a_pred - a_true| / |a_true| over the orbital plane with the training orbits on
  top (``field_grid.parquet``, ``training_orbits.parquet``);
- ``parallel``: parallel coordinates of the swept parameters, coloured by a metric.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .importance import completed
from .kinds import KINDS
from .source import Sweep, param_value, varying_params

MU_EARTH = 398600.4418  # km^3/s^2
R_EARTH = 6378.137  # km
ARTIFACTS = "checkpoint/artifacts"


def select_runs(runs: pl.DataFrame, metric: str, mode: str, ids: list[str] | None, top: int) -> pl.DataFrame:
    """The runs named by ``ids`` (run id prefixes or trial ids), else the ``top`` best by ``metric``."""
    if ids:
        mask = pl.lit(False)
        for i in ids:
            mask = mask | pl.col("run_id").str.starts_with(i)
            if "tags.trial_id" in runs.columns:
                mask = mask | (pl.col("tags.trial_id") == i)
        chosen = runs.filter(mask)
        if chosen.height == 0:
            raise AnalysisError(f"--runs: none of {', '.join(ids)} is a run id (prefix) or trial id of this sweep")
        return chosen
    done = completed(runs, metric)
    return done.sort(f"metrics.{metric}", descending=mode == "max").head(top)


def label(row: dict[str, Any], params: list[str]) -> str:
    trial = row.get("tags.trial_id") or row["run_id"][:8]
    keys = "\n".join(f"{p.removeprefix('params.')}={row.get(p)}" for p in params[:3])
    return f"{trial}\n{keys}" if keys else trial


def artifact(sweep: Sweep, run_id: str, name: str, cache: Path) -> pl.DataFrame:
    """A run's Parquet artefact (downloaded once into ``cache``)."""
    target = cache / run_id / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            local = sweep.client.download_artifacts(run_id, f"{ARTIFACTS}/{name}", str(target.parent))
        except Exception as err:  # MLflow raises several types for a missing artefact
            raise AnalysisError(f"run {run_id[:8]} has no artefact {ARTIFACTS}/{name} (was it evaluated?): {err}") from None
        Path(local).replace(target)
    return pl.read_parquet(target)


def heatmap(ctx: "Context") -> Figure:
    params = varying_params(ctx.runs)
    x = f"params.{ctx.args.x}" if ctx.args.x else (params[0] if params else None)
    y = f"params.{ctx.args.y}" if ctx.args.y else (params[1] if len(params) > 1 else None)
    if x is None or y is None or x not in ctx.runs.columns or y not in ctx.runs.columns:
        raise AnalysisError(f"heatmap needs two swept parameters (--x, --y); swept: "
                          f"{', '.join(p.removeprefix('params.') for p in params) or 'none'}")
    done = completed(ctx.runs, ctx.metric)
    xs = sorted(done[x].unique().to_list(), key=_order)
    ys = sorted(done[y].unique().to_list(), key=_order)
    table = done.group_by([x, y]).agg(pl.col(f"metrics.{ctx.metric}").mean().alias("v"), pl.len().alias("n"))
    grid = np.full((len(ys), len(xs)), np.nan)
    counts = np.zeros_like(grid, dtype=int)
    for xv, yv, v, n in table.iter_rows():
        grid[ys.index(yv), xs.index(xv)] = v
        counts[ys.index(yv), xs.index(xv)] = n
    fig = Figure(figsize=(1.4 * len(xs) + 3, 0.8 * len(ys) + 2.5))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis_r" if ctx.mode == "min" else "viridis", aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3g}\n(n={counts[i, j]})", ha="center", va="center", fontsize=8,
                        color="white")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x.removeprefix("params."))
    ax.set_ylabel(y.removeprefix("params."))
    fig.colorbar(image, ax=ax, label=f"mean {ctx.metric}")
    ax.set_title(f"{ctx.sweep.name}: {ctx.metric}")
    return fig


def box(ctx: "Context") -> Figure:
    chosen = ctx.chosen(evaluated=True)
    data, names = [], []
    for row in chosen.iter_rows(named=True):
        points = artifact(ctx.sweep, row["run_id"], "per_point_errors.parquet", ctx.cache)
        test_set = ctx.args.test_set or points["dataset"][0]
        data.append(points.filter(pl.col("dataset") == test_set)["accel_err_pct"].to_numpy())
        names.append(label(row, ctx.params))
    fig = Figure(figsize=(max(6, 2.0 * len(data)), 5))
    ax = fig.subplots()
    ax.boxplot(data, showfliers=True, whis=(5, 95))
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("per-point acceleration error (%)")
    ax.set_title(f"{ctx.sweep.name}: per-point error on {ctx.args.test_set or 'the first test set'} "
                 "(whiskers 5-95 %)")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def curves(ctx: "Context") -> Figure:
    metric = ctx.args.curve_metric or ("train_loss" if "metrics.train_loss" in ctx.runs.columns else ctx.metric)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    positive = True
    for row in ctx.chosen().iter_rows(named=True):
        history = sorted((m.step, m.value) for m in ctx.sweep.client.get_metric_history(row["run_id"], metric))
        if history:
            ax.plot([h[0] for h in history], [h[1] for h in history], marker=".", label=label(row, ctx.params))
            positive = positive and all(h[1] > 0 for h in history)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{ctx.sweep.name}: {metric}")
    return fig


def loglog(ctx: "Context") -> Figure:
    row = ctx.one()
    points = artifact(ctx.sweep, row["run_id"], "per_point_errors.parquet", ctx.cache)
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for test_set, group in points.group_by("dataset", maintain_order=True):
        ax.scatter(group["r_km"], group["a_pred_km_s2"], s=3, alpha=0.5, label=f"learned, {test_set[0]}")
    lo, hi = row.get("metrics.train_r_min_km"), row.get("metrics.train_r_max_km")
    ends = [float(points["r_km"].min()), float(points["r_km"].max())] + [v for v in (lo, hi) if v]
    r = np.geomspace(min(ends), max(ends), 100)
    ax.plot(r, MU_EARTH / r**2, "k--", label="exact: mu / r^2 (slope -2)")
    if lo and hi:
        ax.axvspan(lo, hi, color="tab:green", alpha=0.12, label="training radii")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("r (km)")
    ax.set_ylabel("|a| (km/s^2)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    ax.set_title(f"{ctx.sweep.name}: {label(row, ctx.params).splitlines()[0]}")
    return fig


def trajectory(ctx: "Context") -> Figure:
    row = ctx.one()
    roll = artifact(ctx.sweep, row["run_id"], "rollout.parquet", ctx.cache)
    test_set = ctx.args.test_set or roll["dataset"][0]
    roll = roll.filter(pl.col("dataset") == test_set)
    fig = Figure(figsize=(6.5, 6.5))
    ax = fig.subplots()
    for i, (_, orbit) in enumerate(roll.group_by("orbit_id", maintain_order=True)):
        color = f"C{i % 10}"
        ax.plot(orbit["x_km"], orbit["y_km"], "-", color=color, lw=1.5, alpha=0.5,
                label="true" if i == 0 else None)
        ax.plot(orbit["x_pred_km"], orbit["y_pred_km"], "--", color=color, lw=1, label="predicted" if i == 0 else None)
    ax.add_patch(_earth())
    ax.set_aspect("equal")
    ax.set_xlabel("x (km)")
    ax.set_ylabel("y (km)")
    ax.legend()
    ax.set_title(f"{ctx.sweep.name}: one period from each orbit's first state ({test_set})")
    return fig


def field(ctx: "Context") -> Figure:
    from matplotlib.colors import LogNorm

    row = ctx.one()
    grid = artifact(ctx.sweep, row["run_id"], "field_grid.parquet", ctx.cache)
    orbits = artifact(ctx.sweep, row["run_id"], "training_orbits.parquet", ctx.cache)
    fig = Figure(figsize=(7.5, 6.2))
    ax = fig.subplots()
    err = grid["err_pct"].to_numpy()
    mesh = ax.tripcolor(grid["x_km"].to_numpy(), grid["y_km"].to_numpy(), np.clip(err, 1e-3, None),
                        norm=LogNorm(), cmap="magma", shading="gouraud")
    for _, orbit in orbits.group_by("orbit_id", maintain_order=True):
        ax.plot(orbit["x_km"], orbit["y_km"], color="cyan", lw=0.8)
    ax.add_patch(_earth())
    ax.set_aspect("equal")
    fig.colorbar(mesh, ax=ax, label="|a_pred - a_true| / |a_true| (%)")
    ax.set_xlabel("x (km)")
    ax.set_ylabel("y (km)")
    ax.set_title(f"{ctx.sweep.name}: field residual, training orbits in cyan")
    return fig


def parallel(ctx: "Context") -> Figure:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    done = completed(ctx.runs, ctx.metric)
    params = varying_params(ctx.runs)
    if not params:
        raise AnalysisError("parallel needs at least one swept parameter")
    axes_values, ticks = [], []
    for p in params:
        values = [param_value(v) for v in done[p]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
        if numeric:
            arr = np.array([np.nan if v is None else float(v) for v in values])
            lo, hi = np.nanmin(arr), np.nanmax(arr)
            scaled = np.log10(arr) if lo > 0 and hi / lo > 10 else arr   # e.g. a loguniform learning rate
            slo, shi = np.nanmin(scaled), np.nanmax(scaled)
            axes_values.append((scaled - slo) / (shi - slo) if shi > slo else np.full_like(arr, 0.5))
            ticks.append([(0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")])
        else:
            levels = sorted({str(v) for v in values})
            arr = np.array([levels.index(str(v)) / max(1, len(levels) - 1) for v in values])
            axes_values.append(arr)
            ticks.append([(levels.index(lv) / max(1, len(levels) - 1), lv) for lv in levels])
    metric = done[f"metrics.{ctx.metric}"].to_numpy()
    norm = Normalize(np.nanmin(metric), np.nanmax(metric))
    cmap = colormaps["viridis_r" if ctx.mode == "min" else "viridis"]
    fig = Figure(figsize=(1.8 * len(params) + 3, 5))
    ax = fig.subplots()
    xs = np.arange(len(params))
    for i in np.argsort(-metric if ctx.mode == "min" else metric):
        ax.plot(xs, [a[i] for a in axes_values], color=cmap(norm(metric[i])), alpha=0.8, lw=1.2)
    for x, tick in zip(xs, ticks):
        ax.axvline(x, color="k", lw=0.5)
        for y, text in tick:
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xticks(xs, [p.removeprefix("params.") for p in params])
    ax.set_yticks([])
    fig.colorbar(_mappable(cmap, norm), ax=ax, label=ctx.metric)
    ax.set_title(f"{ctx.sweep.name}: {done.height} completed runs")
    return fig


def _mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def _earth() -> Any:
    from matplotlib.patches import Circle

    return Circle((0, 0), R_EARTH, color="tab:blue", alpha=0.35)


def _order(value: Any) -> Any:
    parsed = param_value(value)
    return (0, parsed, "") if isinstance(parsed, (int, float)) else (1, 0, str(value))


DRAW: dict[str, Callable[["Context"], Figure]] = {"heatmap": heatmap, "box": box, "curves": curves,
                                                   "loglog": loglog, "trajectory": trajectory, "field": field,
                                                   "parallel": parallel}


class Context:
    """What a plot needs: the sweep, its runs, the metric, the CLI arguments, a download cache."""

    def __init__(self, sweep: Sweep, runs: pl.DataFrame, metric: str, mode: str, args: Any, cache: Path) -> None:
        self.sweep, self.runs, self.metric, self.mode, self.args, self.cache = sweep, runs, metric, mode, args, cache
        self.params = varying_params(runs)

    def chosen(self, evaluated: bool = False) -> pl.DataFrame:
        """The runs to draw; with ``evaluated``, among the runs that reached their final
        evaluation (runs ASHA stopped early or that failed have no evaluation artefacts)."""
        runs = self.runs
        if evaluated and not self.args.runs:
            tests = [c for c in runs.columns if c.startswith("metrics.test/")]
            runs = runs.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in tests])) if tests else runs.clear()
            if runs.is_empty():
                raise AnalysisError("no run of this sweep reached its final evaluation (test metrics and "
                                    "artefacts come with it): nothing to draw")
        return select_runs(runs, self.metric, self.mode, self.args.runs, self.args.top)

    def one(self) -> dict[str, Any]:
        """The single run a per-run plot draws: the first of ``--runs``, else the best evaluated one."""
        return next(self.chosen(evaluated=True).head(1).iter_rows(named=True))


def plot(sweep: Sweep, runs: pl.DataFrame, kind: str, metric: str, mode: str, args: Any, out: Path) -> Path:
    """Draw ``kind`` into ``out/<kind>.png``, log it to the sweep's parent run (``plots/``)."""
    if kind not in DRAW:
        raise AnalysisError(f"plot kind {kind!r} is not known; known: {', '.join(KINDS)}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small files: no bars
    with tempfile.TemporaryDirectory(prefix="dynsweep-plot-") as cache:
        fig = DRAW[kind](Context(sweep, runs, metric, mode, args, Path(cache)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}.png"
    tmp = out / f".{kind}.tmp.png"
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    sweep.client.log_artifact(sweep.parent_id, str(path), artifact_path="plots")
    return path
