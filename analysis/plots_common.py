"""Plot kinds for every family, drawn from metrics and parameters only (no artefacts):

- ``curves``: a metric (default the training loss) against step for the selected runs;
- ``box``: the sweep metric of the completed runs, one box per value of a parameter (``--x``); runs
  that trained seed replicates add each replicate's value (the box spans them);
- ``heatmap``: mean of the metric over two parameters (e.g. training orbits x segment length), in
  panels by a third and a fourth (``--facet``, ``--facet-row``);
- ``parallel``: parallel coordinates of the swept parameters and, last, the metric, coloured by the metric.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .importance import completed
from .plotbase import Context, PlotKind, short_label
from .source import param_value, varying_params


def heatmap(ctx: Context) -> Figure:
    """Mean metric over two parameters (``--x``, ``--y``); ``--facet`` and ``--facet-row`` split it
    into one panel per value of a third and a fourth parameter, on one colour scale."""
    params = varying_params(ctx.runs)
    x = f"params.{ctx.args.x}" if ctx.args.x else (params[0] if params else None)
    y = f"params.{ctx.args.y}" if ctx.args.y else (params[1] if len(params) > 1 else None)
    if x is None or y is None or x not in ctx.runs.columns or y not in ctx.runs.columns:
        raise AnalysisError(f"heatmap needs two swept parameters (--x, --y); swept: "
                          f"{', '.join(p.removeprefix('params.') for p in params) or 'none'}")
    facets = [f"params.{f}" if f else None for f in (getattr(ctx.args, "facet_row", None),
                                                       getattr(ctx.args, "facet", None))]
    for f in facets:
        if f is not None and f not in ctx.runs.columns:
            raise AnalysisError(f"heatmap: no parameter {f.removeprefix('params.')!r} to facet by; parameters: "
                                f"{', '.join(c.removeprefix('params.') for c in ctx.runs.columns if c.startswith('params.'))}")
    done = completed(ctx.runs, ctx.metric)
    xs = sorted(done[x].unique().to_list(), key=_order)
    ys = sorted(done[y].unique().to_list(), key=_order)
    rows = sorted(done[facets[0]].unique().to_list(), key=_order) if facets[0] else [None]
    cols = sorted(done[facets[1]].unique().to_list(), key=_order) if facets[1] else [None]
    keys = [k for k in (x, y, facets[0], facets[1]) if k is not None]
    table = done.group_by(keys).agg(pl.col(f"metrics.{ctx.metric}").mean().alias("v"), pl.len().alias("n"))
    grids = {(r, c): (np.full((len(ys), len(xs)), np.nan), np.zeros((len(ys), len(xs)), dtype=int))
             for r in rows for c in cols}
    for rec in table.iter_rows(named=True):
        grid, counts = grids[(rec[facets[0]] if facets[0] else None, rec[facets[1]] if facets[1] else None)]
        grid[ys.index(rec[y]), xs.index(rec[x])] = rec["v"]
        counts[ys.index(rec[y]), xs.index(rec[x])] = rec["n"]
    values = np.concatenate([g.reshape(-1) for g, _ in grids.values()])
    finite = values[np.isfinite(values)]
    from matplotlib.colors import Normalize

    norm = Normalize(float(finite.min()), float(finite.max())) if finite.size else None
    fig = Figure(figsize=(len(cols) * (1.4 * len(xs) + 1.5) + 1.5, len(rows) * (0.8 * len(ys) + 1.5) + 1))
    axes = np.atleast_2d(fig.subplots(len(rows), len(cols), squeeze=False))
    image = None
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = axes[i, j]
            grid, counts = grids[(r, c)]
            image = ax.imshow(grid, cmap="viridis_r" if ctx.mode == "min" else "viridis", aspect="auto", norm=norm)
            for yi in range(len(ys)):
                for xi in range(len(xs)):
                    if not math.isnan(grid[yi, xi]):
                        shade = image.cmap(image.norm(grid[yi, xi]))
                        light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
                        ax.text(xi, yi, f"{grid[yi, xi]:.3g}\n(n={counts[yi, xi]})", ha="center", va="center",
                                fontsize=8 if len(rows) * len(cols) == 1 else 7, color="black" if light else "white")
            ax.set_xticks(range(len(xs)), [str(v) for v in xs], fontsize=8)
            ax.set_yticks(range(len(ys)), [str(v) for v in ys], fontsize=8)
            if i == len(rows) - 1:
                ax.set_xlabel(x.removeprefix("params."))
            if j == 0:
                ax.set_ylabel(y.removeprefix("params."))
            where = [f"{f.removeprefix('params.')}={v}" for f, v in zip(facets, (r, c)) if f is not None]
            if where:
                ax.set_title(", ".join(where), fontsize=9)
    assert image is not None
    fig.colorbar(image, ax=axes.ravel().tolist(), label=f"mean {ctx.metric}")
    fig.suptitle(f"{ctx.sweep.name}: {ctx.metric}")
    return fig


def box(ctx: Context) -> Figure:
    """The sweep metric of the completed runs grouped by one parameter (``--x``, default the first
    swept parameter), one box per value with every run as a dot."""
    params = varying_params(ctx.runs)
    by = f"params.{ctx.args.x}" if ctx.args.x else (params[0] if params else None)
    if by is None or by not in ctx.runs.columns:
        raise AnalysisError(f"box needs a swept parameter to group by (--x); swept: "
                            f"{', '.join(p.removeprefix('params.') for p in params) or 'none'}")
    done = completed(ctx.runs, ctx.metric)
    column = f"metrics.{ctx.metric}"
    levels = sorted(done[by].unique().to_list(), key=_order)
    means = [done.filter(pl.col(by) == v)[column].drop_nans().drop_nulls().to_numpy() for v in levels]
    replicate_cols = [c for c in done.columns if re.fullmatch(re.escape(column) + r"_r\d+", c)]
    # runs that trained seed replicates: the box spans every replicate, each run's mean is a dot
    spread = [np.concatenate([done.filter(pl.col(by) == v)[c].drop_nans().drop_nulls().to_numpy()
                              for c in replicate_cols]) for v in levels] if replicate_cols else means
    data = [s if len(s) else m for s, m in zip(spread, means)]
    fig = Figure(figsize=(max(5.5, 1.2 * len(levels) + 2.5), 4.8))
    ax = fig.subplots()
    ax.boxplot(data, whis=(5, 95), showfliers=False)
    for i, (values, reps) in enumerate(zip(means, spread), start=1):
        rng = np.random.default_rng(i)
        if replicate_cols:
            ax.scatter(i + rng.uniform(-0.2, 0.2, len(reps)), reps, s=9, marker="x", alpha=0.6, color="0.45",
                       zorder=2, label="one seed replicate" if i == 1 else None)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.7, color="tab:blue", zorder=3,
                   label="a run (mean over its replicates)" if replicate_cols and i == 1 else None)
    if replicate_cols:
        ax.legend(fontsize=8, loc="best")
    ax.set_xticks(range(1, len(levels) + 1), [f"{v}\n(n={len(d)})" for v, d in zip(levels, means)], fontsize=8)
    if all(len(d) and (d > 0).all() for d in data) and max(d.max() for d in data if len(d)) / \
            max(min(d.min() for d in data if len(d)), 1e-300) > 20:
        ax.set_yscale("log")
    ax.set_xlabel(by.removeprefix("params."))
    ax.set_ylabel(ctx.metric + (" (higher is better)" if ctx.mode == "max" else " (lower is better)"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(f"{ctx.sweep.name}: {ctx.metric} by {by.removeprefix('params.')} ({done.height} completed runs)")
    return fig


def curve_metric(ctx: Context) -> str:
    """The metric ``curves`` draws by default: the sweep's ranking metric (what ASHA and the
    searcher saw, comparable across trials whatever their loss), unless it is only computed at the
    end (``test/...``); then the training loss."""
    if ctx.metric.startswith("test/") and "metrics.train_loss" in ctx.runs.columns:
        return "train_loss"
    return ctx.metric


def curves(ctx: Context) -> Figure:
    metric = ctx.args.curve_metric or curve_metric(ctx)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    positive = True
    for row in ctx.chosen().iter_rows(named=True):
        history = sorted((m.step, m.value) for m in ctx.sweep.client.get_metric_history(row["run_id"], metric))
        if history:
            ax.plot([h[0] for h in history], [h[1] for h in history], marker=".",
                    label=short_label(row, ctx.params))
            positive = positive and all(h[1] > 0 for h in history)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{ctx.sweep.name}: {metric}")
    return fig


def parallel(ctx: Context) -> Figure:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    done = completed(ctx.runs, ctx.metric)
    params = varying_params(ctx.runs)
    if not params:
        raise AnalysisError("parallel needs at least one swept parameter")
    axes_values, ticks = [], []
    metric = done[f"metrics.{ctx.metric}"].to_numpy()
    for p in [*params, None]:  # the swept parameters, then the metric (so one parameter still draws lines)
        values = [param_value(v) for v in done[p]] if p else [float(m) for m in metric]
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
    norm = Normalize(np.nanmin(metric), np.nanmax(metric))
    cmap = colormaps["viridis" if ctx.mode == "min" else "viridis_r"]   # the best runs dark, drawn last
    fig = Figure(figsize=(1.8 * len(params) + 4.8, 5))
    ax = fig.subplots()
    xs = np.arange(len(params) + 1)
    for i in np.argsort(-metric if ctx.mode == "min" else metric):
        ax.plot(xs, [a[i] for a in axes_values], color=cmap(norm(metric[i])), alpha=0.8, lw=1.2)
    for x, tick in zip(xs, ticks):
        ax.axvline(x, color="k", lw=0.5)
        for y, text in tick:
            ax.text(x + 0.03, y, _short(text), fontsize=6, va="center",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
    ax.set_xticks(xs, [p.removeprefix("params.") for p in params] + [ctx.metric], rotation=25, ha="right", fontsize=8)
    ax.set_yticks([])
    fig.colorbar(_mappable(cmap, norm), ax=ax, label=ctx.metric)
    ax.set_title(f"{ctx.sweep.name}: {done.height} completed runs")
    return fig


def _short(label: str, limit: int = 13) -> str:
    """A category label short enough not to run into the next axis (the start kept)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def _order(value: Any) -> Any:
    parsed = param_value(value)
    return (0, parsed, "") if isinstance(parsed, (int, float)) else (1, 0, str(value))



PLOTS = {k.name: k for k in (
    PlotKind("curves", curves, help="a metric against step for the selected runs (--curve-metric)"),
    PlotKind("box", box, help="the metric of the completed runs by one parameter (--x)"),
    PlotKind("heatmap", heatmap, help="mean metric over two parameters (--x, --y), in panels by a third and "
             "a fourth (--facet, --facet-row)", size=(1100, 760)),
    PlotKind("parallel", parallel, help="parallel coordinates of the swept parameters and the metric, coloured by it"),
)}
