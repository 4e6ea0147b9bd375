"""Latent ODE plot kinds:

- ``forecast``: observed (noisy, irregular), true and predicted trajectories of two test
  trajectories of one run (the best evaluated, or the first of ``--runs``), one panel per channel
  and trajectory, the end of the context window marked (artefact ``latentode.trajectories``); for
  two-body observations (channels ``x`` and ``y``) a last panel draws the orbit in the plane.
"""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from .plotbase import Context, PlotKind

TRAJECTORIES = "latentode.trajectories/2"
SHOWN_SEQS = 2


def forecast(ctx: Context) -> Figure:
    row = ctx.one()
    table = ctx.artifact(row["run_id"], TRAJECTORIES)
    seqs = sorted(table["seq"].unique().to_list())[:SHOWN_SEQS]
    channels = table["channel"].unique(maintain_order=True).to_list()
    t_unit = table["t_unit"][0]
    plane = {"x", "y"} <= set(channels)
    fig = Figure(layout="constrained")
    axes = fig.subplots(len(seqs), len(channels) + plane, squeeze=False)
    for i, seq in enumerate(seqs):
        for j, channel in enumerate(channels):
            ax = axes[i, j]
            part = table.filter((pl.col("seq") == seq) & (pl.col("channel") == channel))
            end = float(part["context_end"][0])
            true, pred = (part.filter(pl.col("kind") == k).sort("t") for k in ("true", "predicted"))
            obs = part.filter(pl.col("kind") == "observed")
            ax.plot(true["t"], true["value"], "k-", lw=1.2, alpha=0.7, label="true")
            ax.plot(pred["t"], pred["value"], "-", color="C3", lw=1.4, label="predicted (from the context)")
            for name, mask, colour in (("observed, context", pl.col("t") < end, "C0"),
                                       ("observed, forecast (not seen)", pl.col("t") >= end, "C1")):
                dots = obs.filter(mask)
                ax.scatter(dots["t"], dots["value"], s=14, color=colour, zorder=3, label=name)
            ax.axvline(end, color="0.5", ls="--", lw=1)
            ax.grid(True, alpha=0.3)
            if i == 0:
                ax.set_title(f"{channel} ({part['unit'][0]})", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"test trajectory {seq}", fontsize=8)
            if i == len(seqs) - 1:
                ax.set_xlabel(f"t ({t_unit})")
        if plane:
            _orbit(axes[i, -1], table.filter(pl.col("seq") == seq), i == 0)
    axes[0, 0].legend(fontsize=7)
    trial = row.get("tags.trial_id") or row["run_id"][:8]
    fig.suptitle(f"{ctx.sweep.name}: {trial} ({row.get('params.model', 'latent_ode')}): interpolation left of the "
                 "dashed line, extrapolation right; t from the window's start", fontsize=10)
    return fig


def _orbit(ax: object, part: pl.DataFrame, title: bool) -> None:
    """One trajectory's y against x: true, predicted, observed (context and forecast), the planet."""
    def xy(kind: str) -> pl.DataFrame:
        rows = part.filter(pl.col("kind") == kind).pivot(on="channel", index="t", values="value").sort("t")
        return rows
    end = float(part["context_end"][0])
    true, pred, obs = xy("true"), xy("predicted"), xy("observed")
    ax.plot(true["x"], true["y"], "k-", lw=1.2, alpha=0.7)  # type: ignore[attr-defined]
    ax.plot(pred["x"], pred["y"], "-", color="C3", lw=1.4)  # type: ignore[attr-defined]
    for mask, colour in ((pl.col("t") < end, "C0"), (pl.col("t") >= end, "C1")):
        dots = obs.filter(mask)
        ax.scatter(dots["x"], dots["y"], s=10, color=colour, zorder=3)  # type: ignore[attr-defined]
    unit = part.filter(pl.col("channel") == "x")["unit"][0]
    if unit == "DU":  # the Earth: radius 1 DU
        ax.add_patch(Circle((0.0, 0.0), 1.0, color="C2", alpha=0.25, zorder=1))  # type: ignore[attr-defined]
    ax.set_aspect("equal", adjustable="datalim")  # type: ignore[attr-defined]
    ax.grid(True, alpha=0.3)  # type: ignore[attr-defined]
    ax.set_xlabel(f"x ({unit})")  # type: ignore[attr-defined]
    if title:
        ax.set_title("orbit (Earth in green)", fontsize=9)  # type: ignore[attr-defined]


PLOTS = {k.name: k for k in (
    PlotKind("forecast", forecast, (TRAJECTORIES,), "observed / true / predicted trajectories of the best evaluated "
             "run, context and forecast windows (two-body: and the orbit in the plane)", (1200, 600)),
)}
