"""Two-body plot kinds, from the artefacts of the family's final evaluation:

- ``errors``: per-point acceleration error (%) per run (format ``twobody.per_point_errors``);
- ``loglog``: |a_pred| against r with the exact slope -2 (mu / r^2) and the training radii;
- ``trajectory``: predicted against true test orbits (``twobody.rollout``);
- ``field``: |a_pred - a_true| / |a_true| over the orbital plane with the training orbits on top
  (``twobody.field_grid``, ``twobody.training_orbits``);
- ``anomaly``: error, head output m0 and learned radial acceleration against true anomaly, sign
  flips marked (``twobody.head_outputs``);
- ``orbits``: per-orbit error against eccentricity and semi-major axis with 1.5 x IQR outliers, and
  per-orbit box plots by run (``twobody.per_orbit``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .plotbase import Context, PlotKind, label

MU_EARTH = 398600.4418  # km^3/s^2
R_EARTH = 6378.137  # km
PER_POINT = "twobody.per_point_errors/1"
ROLLOUT = "twobody.rollout/1"
FIELD = "twobody.field_grid/1"
TRAIN_ORBITS = "twobody.training_orbits/1"
PER_ORBIT = "twobody.per_orbit/1"
HEAD_OUTPUTS = "twobody.head_outputs/1"


def errors(ctx: Context) -> Figure:
    chosen = ctx.chosen(evaluated=True)
    data, names = [], []
    for row in chosen.iter_rows(named=True):
        points = ctx.artifact(row["run_id"], PER_POINT)
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


def loglog(ctx: Context) -> Figure:
    row = ctx.one()
    points = ctx.artifact(row["run_id"], PER_POINT)
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


def trajectory(ctx: Context) -> Figure:
    row = ctx.one()
    roll = ctx.artifact(row["run_id"], ROLLOUT)
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


def field(ctx: Context) -> Figure:
    from matplotlib.colors import LogNorm

    row = ctx.one()
    grid = ctx.artifact(row["run_id"], FIELD)
    orbits = ctx.artifact(row["run_id"], TRAIN_ORBITS)
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


def anomaly(ctx: Context) -> Figure:
    """Along the first orbits of a test set: the error, the head's magnitude output and the learned
    radial acceleration against true anomaly; sign flips (outward <-> inward) marked."""
    row = ctx.one()
    heads = ctx.artifact(row["run_id"], HEAD_OUTPUTS)
    test_set = ctx.args.test_set or heads["dataset"][0]
    heads = heads.filter(pl.col("dataset") == test_set)
    fig = Figure(figsize=(9, 8))
    ax_err, ax_m0, ax_r = fig.subplots(3, 1, sharex=True)
    for i, (_, orbit) in enumerate(heads.group_by("orbit_id", maintain_order=True)):
        orbit = orbit.sort("true_anomaly_deg")
        nu, color = orbit["true_anomaly_deg"].to_numpy(), f"C{i % 10}"
        ax_err.plot(nu, orbit["accel_err_pct"], color=color, lw=1)
        ax_m0.plot(nu, orbit["m0"], color=color, lw=1)
        a_r = orbit["a_radial_km_s2"].to_numpy()
        ax_r.plot(nu, a_r, color=color, lw=1, label=f"orbit {orbit['orbit_id'][0]}")
        flip = orbit["sign_flip"].to_numpy()
        ax_r.scatter(nu[flip], a_r[flip], color=color, marker="x", s=40, zorder=3)
    ax_err.set(ylabel="acceleration error (%)", yscale="log")
    ax_m0.set(ylabel="head output m0")
    ax_r.axhline(0.0, color="k", lw=0.8)
    ax_r.set(ylabel="learned a . r_hat (km/s^2)\n(> 0: outward; x: sign flip)", xlabel="true anomaly (deg)")
    ax_r.legend(fontsize=7, ncol=4)
    for ax in (ax_err, ax_m0, ax_r):
        ax.grid(True, alpha=0.3)
        ax.axvspan(0, 45, color="tab:orange", alpha=0.08)
        ax.axvspan(315, 360, color="tab:orange", alpha=0.08)
    ax_err.set_title(f"{ctx.sweep.name}: {label(row, ctx.params).splitlines()[0]} on {test_set} "
                     "(shaded: within 45 deg of periapsis)", fontsize=9)
    return fig


def orbits(ctx: Context) -> Figure:
    """Per-orbit mean error of one run against eccentricity and semi-major axis (1.5 x IQR outliers
    in red), and the per-orbit errors of every chosen run as box plots."""
    row = ctx.one()
    table = ctx.artifact(row["run_id"], PER_ORBIT)
    test_set = ctx.args.test_set or table["dataset"][0]
    table = table.filter(pl.col("dataset") == test_set)
    fig = Figure(figsize=(13, 4.5))
    ax_e, ax_a, ax_box = fig.subplots(1, 3)
    out = table["outlier"].to_numpy()
    for ax, col, name in ((ax_e, "e", "eccentricity"), (ax_a, "a_km", "semi-major axis (km)")):
        ax.scatter(table[col].to_numpy()[~out], table["accel_err_mean"].to_numpy()[~out], s=14, label="orbit")
        ax.scatter(table[col].to_numpy()[out], table["accel_err_mean"].to_numpy()[out], s=30, color="tab:red",
                   label="1.5 x IQR outlier")
        ax.set(xlabel=name, ylabel="orbit mean acceleration error (%)", yscale="log")
        ax.grid(True, alpha=0.3)
    ax_e.legend(fontsize=8)
    ax_e.set_title(f"{label(row, ctx.params).splitlines()[0]} on {test_set}", fontsize=9)
    data, names = [], []
    for other in ctx.chosen(evaluated=True).iter_rows(named=True):
        t = ctx.artifact(other["run_id"], PER_ORBIT).filter(pl.col("dataset") == test_set)
        data.append(t["accel_err_mean"].to_numpy())
        names.append(label(other, ctx.params))
    ax_box.boxplot(data, whis=1.5)
    ax_box.set_xticks(range(1, len(names) + 1), names, fontsize=6, rotation=30, ha="right")
    ax_box.set(yscale="log", ylabel="orbit mean error (%)", title="per-orbit errors by run")
    ax_box.grid(True, axis="y", alpha=0.3)
    return fig


def _earth() -> Any:
    from matplotlib.patches import Circle

    return Circle((0, 0), R_EARTH, color="tab:blue", alpha=0.35)


PLOTS = {k.name: k for k in (
    PlotKind("errors", errors, (PER_POINT,), "per-point acceleration error (%) per run (--test-set)", (1100, 550)),
    PlotKind("loglog", loglog, (PER_POINT,), "|a_pred| against r with the exact mu / r^2"),
    PlotKind("trajectory", trajectory, (ROLLOUT,), "predicted against true test orbits (--test-set)", (715, 715)),
    PlotKind("field", field, (FIELD, TRAIN_ORBITS), "field residual over the orbital plane, training orbits on top",
             (825, 680)),
    PlotKind("anomaly", anomaly, (HEAD_OUTPUTS,), "error, head output and radial acceleration against true anomaly, "
             "sign flips marked (--test-set)", (1080, 960)),
    PlotKind("orbits", orbits, (PER_ORBIT,), "per-orbit error against e and a (outliers in red), per-orbit box "
             "plots by run (--test-set)", (1560, 540)),
)}
