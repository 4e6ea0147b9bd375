"""Learned time-stepper plot kinds:

- ``dt-orbit``: the dt the network chose along its evaluation orbit against r, with the r^(3/2)
  rule and the fixed dt (both tuned to the same maximum energy error) at the same states
  (artefact ``timestepper.dt_orbit``);
- ``pareto``: steps per orbit against maximum energy error, one point per run for each method
  (learned, fixed dt, r^(3/2) rule), from the runs' ``test/`` metrics; log axes.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .errors import AnalysisError
from .plotbase import Context, PlotKind, evaluated_mask, short_label

DT_ORBIT = "timestepper.dt_orbit/1"


def dt_orbit(ctx: Context) -> Figure:
    row = ctx.one()
    orbit = ctx.artifact(row["run_id"], DT_ORBIT).sort("step")
    r = orbit["r"].to_numpy()
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(r, orbit["dt_learned_periods"], c=orbit["t_periods"], cmap="viridis", s=10, zorder=3,
                        label="learned (colour: time)")
    order = np.argsort(r)
    if orbit["dt_r32_periods"].is_not_nan().any():
        ax.plot(r[order], orbit["dt_r32_periods"].to_numpy()[order], "-", color="tab:red", lw=1.5,
                label="$r^{3/2}$ rule (same max energy error)")
    fixed = orbit["dt_fixed_periods"].drop_nans()
    if fixed.len():
        ax.axhline(float(fixed[0]), color="tab:gray", ls="--", lw=1.2, label="fixed dt (same max energy error)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("separation r of the inner pair (semi-major axes)")
    ax.set_ylabel("dt (orbital periods)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    fig.colorbar(points, ax=ax, label="t (orbital periods)")
    worst = float(orbit["energy_error"].max())
    ax.set_title(f"{ctx.sweep.name}: {short_label(row, ctx.params)}\n{orbit.height} steps, "
                 f"max relative energy error {worst:.2g}", fontsize=10)
    return fig


METHODS = (("learned", "test/steps_per_orbit", "o", "tab:blue"),
           ("fixed dt", "test/fixed_steps_per_orbit", "s", "tab:gray"),
           ("$r^{3/2}$ rule", "test/r32_steps_per_orbit", "^", "tab:red"))


def pareto(ctx: Context) -> Figure:
    """One point per run and method at the run's maximum energy error (``test/energy_error``): both
    baselines were tuned to it and their step counts rescaled to exactly that error."""
    runs = ctx.runs.filter(evaluated_mask(ctx.runs)) if not ctx.args.runs else ctx.chosen()
    need = ["metrics.test/energy_error"] + [f"metrics.{m}" for _, m, _, _ in METHODS]
    missing = [c.removeprefix("metrics.") for c in need if c not in runs.columns]
    if missing:
        raise AnalysisError(f"pareto needs the metrics {', '.join(missing)}: no run reported them")
    runs = runs.filter(pl.all_horizontal([pl.col(c).is_not_null() & pl.col(c).is_finite() & (pl.col(c) > 0)
                                          for c in need]))
    if runs.is_empty():
        raise AnalysisError("no run of this sweep has a finite energy error and tuned baselines: nothing to draw")
    err = runs["metrics.test/energy_error"].to_numpy()
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    steps = {name: runs[f"metrics.{metric}"].to_numpy() for name, metric, _, _ in METHODS}
    for i in range(runs.height):   # one run's three methods share its error: a thin connector
        ys = [steps[name][i] for name, *_ in METHODS]
        ax.plot([err[i]] * 2, [min(ys), max(ys)], color="k", lw=0.5, alpha=0.3, zorder=1)
    order = np.argsort(err)
    for name, _, marker, color in METHODS:
        y = steps[name]
        if name != "learned":      # a baseline is a one-parameter family: its points trace a front
            ax.plot(err[order], y[order], "-", color=color, lw=0.8, alpha=0.6, zorder=2)
        ax.scatter(err, y, marker=marker, color=color, s=36, zorder=3, edgecolor="k", linewidth=0.4,
                   label=f"{name} ({len(y)} runs)")
    best = int(np.argmin(runs[f"metrics.{ctx.metric}"].to_numpy())) if ctx.mode == "min" and \
        f"metrics.{ctx.metric}" in runs.columns else None
    if best is not None and math.isfinite(steps["learned"][best]):
        row = next(runs.slice(best, 1).iter_rows(named=True))
        ax.annotate(f"best ({ctx.metric}): {row.get('tags.trial_id') or row['run_id'][:8]}",
                    (err[best], steps["learned"][best]), textcoords="offset points", xytext=(-8, -12), fontsize=7,
                    ha="right")   # to the left of the point: the best run often sits at the right edge
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):   # minor labels at 2 and 5 only (all of them overlap on a narrow range)
        axis.set_minor_formatter(FuncFormatter(_two_five))
    ax.set_xlabel("maximum relative energy error over the evaluation orbits")
    ax.set_ylabel("steps per orbit")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    ax.set_title(f"{ctx.sweep.name}: cost against accuracy (baselines tuned to each run's error)", fontsize=10)
    return fig


def _two_five(value: float, _pos: int) -> str:
    text = f"{value:.0e}"
    return text if text[0] in "25" else ""


PLOTS = {k.name: k for k in (
    PlotKind("dt-orbit", dt_orbit, (DT_ORBIT,), "learned dt along an orbit against r, with the r^1.5 rule and "
             "fixed dt", (880, 605)),
    PlotKind("pareto", pareto, (), "steps per orbit against max energy error: learned / fixed / r^1.5, per run",
             (880, 605)),
)}
