"""Double-pendulum plot kinds, from the artefacts of the family's final evaluation (format
``pendulum.rollout``: open-loop test rollouts with their normalised error and energies):

- ``angles``: predicted against true theta1, theta2 over the rollout of one run;
- ``error-growth``: normalised RMSE against time in Lyapunov times (log y) for the top runs, with
  the valid-prediction-time threshold;
- ``energy-drift``: |E(t) - E(start)| / (g ((m1 + m2) l1 + m2 l2)) of the model's rollout against
  the reference data's, for the top runs.

Valid prediction time by cell type or hidden size is the generic ``box`` kind
(``--metric test/vpt_lyapunov --mode max --x rnn``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .plotbase import Context, PlotKind, short_label

ROLLOUT = "pendulum.rollout/1"


def _first_sim(roll: pl.DataFrame) -> tuple[Any, pl.DataFrame]:
    sim = roll["sim_id"][0]
    return sim, roll.filter(pl.col("sim_id") == sim).sort("step")


def _vpt(sim: pl.DataFrame) -> float | None:
    """Valid prediction time (s) as the metric counts it: the time of the last step before the first
    one whose normalised RMSE exceeds the threshold (None: never exceeded)."""
    over = sim.filter(pl.col("nrmse") > pl.col("vpt_threshold"))
    if not over.height:
        return None
    dt = float(sim["t_s"][0]) / float(sim["step"][0])
    return (int(over["step"][0]) - 1) * dt


def _lyapunov_rate(roll: pl.DataFrame) -> float:
    """The true largest Lyapunov exponent (1/s) the artefact's time axis was scaled by (0 if none)."""
    last = roll.sort("t_s").tail(1)
    t = float(last["t_s"][0])
    return float(last["t_lyapunov"][0]) / t if t > 0 else 0.0


def angles(ctx: Context) -> Figure:
    row = ctx.one()
    roll = ctx.artifact(row["run_id"], ROLLOUT)
    sim_id, sim = _first_sim(roll)
    t = sim["t_s"].to_numpy()
    vpt = _vpt(sim)
    fig = Figure(figsize=(8, 6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, name, symbol in zip(axes, ("theta1", "theta2"), ("\\theta_1", "\\theta_2")):
        # unwrap both series from the same start so that a turn past +/- pi draws no vertical jump
        true = np.unwrap(sim[f"{name}_true"].to_numpy())
        pred = np.unwrap(sim[f"{name}_pred"].to_numpy())
        pred += 2 * np.pi * np.round((true[0] - pred[0]) / (2 * np.pi))
        ax.plot(t, true, "k-", lw=1.6, label="true (reference data)")
        ax.plot(t, pred, "-", color="tab:red", lw=1.2, label="predicted (open loop)")
        if vpt is not None:
            ax.axvline(vpt, color="tab:blue", ls=":", lw=1.2, label=f"valid prediction time {vpt:.2f} s")
        ax.set_ylabel(f"${symbol}$ (rad, unwrapped)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("time since the last input state (s)")
    rate = _lyapunov_rate(roll)
    if rate > 0:
        top = axes[0].secondary_xaxis("top", functions=(lambda s: s * rate, lambda lt: lt / rate))
        top.set_xlabel("Lyapunov times")
    axes[0].set_title(f"{ctx.sweep.name}: {short_label(row, ctx.params)}, test simulation {sim_id}", fontsize=10)
    return fig


def error_growth(ctx: Context) -> Figure:
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    threshold = None
    for i, row in enumerate(ctx.chosen(evaluated=True).iter_rows(named=True)):
        roll = ctx.artifact(row["run_id"], ROLLOUT)
        mean = roll.group_by("step").agg(pl.col("t_lyapunov").first(), pl.col("nrmse").mean()).sort("step")
        color = f"C{i % 10}"
        for _, sim in roll.group_by("sim_id"):      # every test simulation, faint
            sim = sim.sort("step")
            ax.plot(sim["t_lyapunov"], sim["nrmse"], color=color, lw=0.6, alpha=0.25)
        n_sims = roll["sim_id"].n_unique()
        ax.plot(mean["t_lyapunov"], mean["nrmse"], color=color, lw=1.8,
                label=f"{short_label(row, ctx.params)} (mean of {n_sims})")
        threshold = float(roll["vpt_threshold"][0])
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"VPT threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("time since the last input state (Lyapunov times of the true system)")
    ax.set_ylabel("normalised RMSE (6-feature encoding)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{ctx.sweep.name}: open-loop error growth (thin: each test simulation)")
    return fig


def energy_drift(ctx: Context) -> Figure:
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    floor = 1e-16
    reference = None
    for i, row in enumerate(ctx.chosen(evaluated=True).iter_rows(named=True)):
        roll = ctx.artifact(row["run_id"], ROLLOUT)
        mean = roll.group_by("step").agg(
            pl.col("t_s").first(), pl.col("energy_drift_pred_rel").abs().mean().alias("model"),
            pl.col("energy_drift_true_rel").abs().mean().alias("true")).sort("step")
        ax.plot(mean["t_s"], np.maximum(mean["model"].to_numpy(), floor), color=f"C{i % 10}", lw=1.5,
                label=short_label(row, ctx.params))
        if reference is None:
            reference = (mean["t_s"].to_numpy(), np.maximum(mean["true"].to_numpy(), floor))
    if reference is not None:
        ax.plot(*reference, "k--", lw=1.2, label="reference data (best run's test simulations)")
    ax.set_yscale("log")
    ax.set_xlabel("time since the last input state (s)")
    ax.set_ylabel(r"$|E(t) - E_0|\ /\ g\,((m_1 + m_2)\,l_1 + m_2 l_2)$" "\n"
                  r"($E_0$: energy of the last input state)", fontsize=9)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"{ctx.sweep.name}: energy drift over the open-loop rollout (mean over test simulations)")
    return fig


PLOTS = {k.name: k for k in (
    PlotKind("angles", angles, (ROLLOUT,), "predicted against true theta1, theta2 over one open-loop rollout",
             (880, 660)),
    PlotKind("error-growth", error_growth, (ROLLOUT,),
             "normalised RMSE against Lyapunov times (log) for the top runs, with the VPT threshold", (880, 550)),
    PlotKind("energy-drift", energy_drift, (ROLLOUT,), "energy drift of the model's rollouts against the reference",
             (880, 550)),
)}
