"""Regression plot kinds, from the ``regression.predictions`` artefact and the runs' metrics:

- ``pred-vs-true``: prediction against the clean truth on the validation rows, with y = x, for
  the best evaluated runs (one panel per run, up to 3; per output when there are several);
  against the noisy targets when the table has no clean truth (the title says so); rows the
  table flags as outliers in another colour;
- ``residuals``: histograms of prediction - target on the validation rows, one panel per robust
  loss (its best evaluated run), the outlier rows stacked in another colour;
- ``by-loss``: the clean-truth error (``clean_rmse_val``; the sweep metric without it) by loss,
  a box per loss value with every run as a dot (hollow: stopped early).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .importance import completed
from .plotbase import Context, PlotKind, evaluated_mask

PREDICTIONS = "regression.predictions/1"
INLIER, OUTLIER = "tab:blue", "tab:red"
LOSS_ORDER = ("mse", "huber", "cauchy", "welsch", "geman_mcclure", "tukey")
"""The family's losses, least robust first (the order of panels and boxes)."""


def _loss_key(loss: Any) -> tuple[int, str]:
    return (LOSS_ORDER.index(loss) if loss in LOSS_ORDER else len(LOSS_ORDER), str(loss))


def _run_name(row: dict[str, Any], params: list[str]) -> str:
    """``trial: loss (scale c)``, then the other swept parameters (up to two)."""
    trial = row.get("tags.trial_id") or row["run_id"][:8]
    scale = row.get("params.scale")
    loss = row.get("params.loss") or "?"
    try:
        shown = loss != "mse" and scale not in (None, "", "None")
        name = f"{trial}: {loss}" + (f" (scale {float(scale):.2g})" if shown else "")
    except ValueError:
        name = f"{trial}: {loss} (scale {scale})"
    others = [p for p in params if p not in ("params.loss", "params.scale")][:2]
    return name + "".join(f", {p.removeprefix('params.')}={row.get(p)}" for p in others)


def _validation(frame: pl.DataFrame) -> pl.DataFrame:
    """The artefact's validation rows (all rows when none is marked val)."""
    val = frame.filter(pl.col("split").str.contains("val"))
    return val if val.height else frame


def pred_vs_true(ctx: Context) -> Figure:
    chosen = list(ctx.chosen(evaluated=True).head(3).iter_rows(named=True))
    panels: list[tuple[dict[str, Any], str, pl.DataFrame]] = []
    for row in chosen:
        frame = _validation(ctx.artifact(row["run_id"], PREDICTIONS))
        for output in frame["output"].unique(maintain_order=True).to_list():
            panels.append((row, output, frame.filter(pl.col("output") == output)))
    panels = panels[:3]
    has_clean = all(bool(p[2]["clean"].is_not_nan().any()) for p in panels)
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (row, output, frame) in zip(axes, panels):
        truth = frame["clean" if has_clean else "target"].to_numpy()
        pred = frame["prediction"].to_numpy()
        flags = frame["outlier"].fill_null(False).to_numpy().astype(bool)
        known = bool(frame["outlier"].is_not_null().any())
        ax.scatter(truth[~flags], pred[~flags], s=6, alpha=0.5, color=INLIER,
                   label="rows with an inlier target" if known else "rows (the table flags no outliers)")
        if flags.any():
            ax.scatter(truth[flags], pred[flags], s=8, alpha=0.7, color=OUTLIER,
                       label="rows with an outlier target")
        lo, hi = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
        ax.set_title(f"{_run_name(row, ctx.params)}\nRMSE {rmse:.3g} ({len(truth)} rows)", fontsize=9)
        ax.set_xlabel(f"{'clean truth' if has_clean else 'noisy target'} of {output}")
        ax.set_ylabel(f"prediction of {output}")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    what = "the clean truth" if has_clean else "the NOISY TARGETS (the table has no clean truth)"
    fig.suptitle(f"{ctx.sweep.name}: prediction against {what}, validation rows, best runs")
    return fig


def residuals(ctx: Context) -> Figure:
    runs = ctx.chosen(evaluated=True) if ctx.args.runs else ctx.runs.filter(evaluated_mask(ctx.runs))
    if runs.is_empty():
        raise AnalysisError("no run of this sweep reached its final evaluation (its artefacts come with it): "
                            "nothing to draw")
    column = f"metrics.{ctx.metric}"
    picks = []
    if "params.loss" in runs.columns:
        for loss in sorted(runs["params.loss"].unique().to_list(), key=_loss_key):
            rows = runs.filter(pl.col("params.loss") == loss)
            if column in rows.columns:
                rows = rows.sort(column, descending=ctx.mode == "max", nulls_last=True)
            picks.append(next(rows.head(1).iter_rows(named=True)))
    else:
        picks = list(ctx.chosen(evaluated=True).iter_rows(named=True))
    picks = picks[:6]
    frames = [_validation(ctx.artifact(row["run_id"], PREDICTIONS)) for row in picks]
    everything = np.concatenate([f["residual"].to_numpy() for f in frames])
    edges = np.histogram_bin_edges(everything[np.isfinite(everything)], bins=60)
    ncols = min(3, len(picks))
    nrows = -(-len(picks) // ncols)
    fig = Figure(layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    for ax in axes.flat[len(picks):]:
        ax.set_visible(False)
    flagged = False
    for ax, row, frame in zip(axes.flat, picks, frames):
        res = frame["residual"].to_numpy()
        known = frame["outlier"].is_not_null().to_numpy()
        flags = frame["outlier"].fill_null(False).to_numpy().astype(bool)
        flagged = flagged or bool(known.any())
        parts, colours, names = [res[~flags]], [INLIER], ["inlier rows" if known.any() else "all rows (no flags)"]
        if flags.any():
            parts.append(res[flags])
            colours.append(OUTLIER)
            names.append("outlier rows")
        counts = ax.hist(parts, bins=edges, stacked=True, color=colours, label=names, alpha=0.85)[0]
        ax.axvline(0, color="k", lw=0.8)
        inl = res[~flags]
        what = "inlier median residual" if known.any() else "median residual"
        ax.set_title(f"{_run_name(row, ctx.params)}\n{what} {np.median(inl):+.3f}", fontsize=9)
        heights = np.diff(np.vstack([np.zeros(len(edges) - 1), np.atleast_2d(counts)]), axis=0).ravel()
        if heights[heights > 0].size and heights.max() / heights[heights > 0].min() > 20:
            ax.set_yscale("log")                                   # a few outliers beside a tall inlier peak
        ax.grid(True, alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("residual = prediction - noisy target")
    for ax in axes[:, 0]:
        ax.set_ylabel("validation rows")
    axes.flat[0].legend(fontsize=7)
    note = "" if flagged else " (the table flags no outliers)"
    fig.suptitle(f"{ctx.sweep.name}: residuals by robust loss, best run of each{note}")
    return fig


def by_loss(ctx: Context) -> Figure:
    metric = "clean_rmse_val" if "metrics.clean_rmse_val" in ctx.runs.columns else ctx.metric
    if "params.loss" not in ctx.runs.columns:
        raise AnalysisError("the runs have no 'loss' parameter to group by")
    done = completed(ctx.runs, metric)
    column = f"metrics.{metric}"
    levels = sorted(done["params.loss"].unique().to_list(), key=_loss_key)
    fig = Figure(layout="constrained")
    ax = fig.subplots()
    data = []
    for i, loss in enumerate(levels, start=1):
        rows = done.filter(pl.col("params.loss") == loss)
        values = rows[column].to_numpy()
        stopped = (rows["tags.stopped_early"] == "true").fill_null(False).to_numpy() \
            if "tags.stopped_early" in rows.columns else np.zeros(len(values), bool)
        data.append(values)
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(values))
        ax.scatter((i + jitter)[~stopped], values[~stopped], s=18, color="tab:blue", zorder=3,
                   label="finished" if i == 1 else None)
        if stopped.any():
            ax.scatter((i + jitter)[stopped], values[stopped], s=18, facecolors="none", edgecolors="tab:blue",
                       zorder=3, label="stopped early (last value)")
    ax.boxplot(data, whis=(5, 95), showfliers=False)
    ax.set_xticks(range(1, len(levels) + 1), [f"{v}\n(n={len(d)})" for v, d in zip(levels, data)], fontsize=8)
    ax.set_xlabel("loss")
    ax.set_ylabel(f"{metric} (lower is better)" if metric == "clean_rmse_val" else
                  f"{metric} ({'higher' if ctx.mode == 'max' else 'lower'} is better)")
    ax.grid(True, axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    what = "error against the clean truth, validation rows" if metric == "clean_rmse_val" else metric
    ax.set_title(f"{ctx.sweep.name}: {what}, by loss ({done.height} runs)")
    return fig


PLOTS = {k.name: k for k in (
    PlotKind("pred-vs-true", pred_vs_true, (PREDICTIONS,),
             "prediction against the clean truth (else the noisy target) with y = x, best runs", (1150, 450)),
    PlotKind("residuals", residuals, (PREDICTIONS,), "residual histograms per loss, outlier rows in red",
             (1200, 650)),
    PlotKind("by-loss", by_loss, help="clean-truth RMSE (else the sweep metric) by loss, a box per loss", size=(900, 500)),
)}
