"""World-model plot kinds:

- ``horizon``: test rollout MSE against the horizon H (metrics ``test/rollout_mse_h<H>``), one
  line per model type (median over its runs, each run a dot), one panel per environment; log y;
- ``energy``: the env's energy along a long free rollout (artefact ``worldmodels.energy``) of
  the best evaluated run of each model type, with the reference's energy, per test sequence; a
  port-Hamiltonian model's learned H (shifted to start at the true energy) dotted;
- ``dt-generalisation``: ``test/dt_x<f>_mse`` for f = 0.5, 2, 4 per model type (grouped bars,
  median over runs, each run a dot); discrete-time models are marked "not applicable";
- ``phase``: true against predicted phase portrait (q against v of the first coordinate) of the
  best evaluated run, per test sequence (artefact ``worldmodels.phase``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .plotbase import Context, PlotKind, evaluated_mask, short_label

ENERGY = "worldmodels.energy/1"
PHASE = "worldmodels.phase/1"
MODEL_ORDER = ("jump", "lstm", "first_order_ode", "newtonian", "velocity", "port_hamiltonian")
DISCRETE = ("jump", "lstm")
FACTORS = ("0.5", "2", "4")
HORIZON = re.compile(r"^metrics\.test/rollout_mse_h(\d+)$")


def _model_key(model: Any) -> tuple[int, str]:
    return (MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER), str(model))


def _colour(model: Any) -> str:
    return f"C{_model_key(model)[0] % 10}"


def _evaluated(ctx: Context) -> pl.DataFrame:
    """The runs to compare model types over: ``--runs`` if given, else every evaluated run."""
    runs = ctx.chosen(evaluated=True) if ctx.args.runs else ctx.runs.filter(evaluated_mask(ctx.runs))
    if runs.is_empty():
        raise AnalysisError("no run of this sweep reached its final evaluation (its test metrics come with it): "
                            "nothing to draw")
    if "params.model" not in runs.columns:
        raise AnalysisError("the runs have no 'model' parameter to group by")
    return runs


def _by_env(runs: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """``(env, runs)`` per environment, in name order (one group when env is not recorded)."""
    if "params.env" not in runs.columns:
        return [("", runs)]
    return [(str(env), runs.filter(pl.col("params.env") == env)) for env in sorted(runs["params.env"].unique())]


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return arr[np.isfinite(arr)]


def horizon(ctx: Context) -> Figure:
    runs = _evaluated(ctx)
    cols = sorted(((int(m.group(1)), c) for c in runs.columns if (m := HORIZON.match(c))), key=lambda hc: hc[0])
    if not cols:
        raise AnalysisError("no run reported test/rollout_mse_h<H> metrics")
    groups = _by_env(runs)
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (env, group) in zip(axes, groups):
        for model in sorted(group["params.model"].unique(), key=_model_key):
            rows = group.filter(pl.col("params.model") == model)
            hs, medians = [], []
            for h, col in cols:
                values = _finite(rows[col])
                values = values[values > 0]
                if len(values):
                    ax.scatter(np.full(len(values), h), values, s=12, alpha=0.4, color=_colour(model))
                    hs.append(h)
                    medians.append(float(np.median(values)))
            if hs:
                ax.plot(hs, medians, "-o", color=_colour(model), label=f"{model} (n={rows.height})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([h for h, _ in cols], [str(h) for h, _ in cols])
        ax.minorticks_off()
        ax.set_xlabel("horizon H (steps, open loop under the true actions)")
        ax.set_title(f"env {env}" if env else "")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("rollout MSE at H (normalised state units)")
    fig.suptitle(f"{ctx.sweep.name}: test rollout error against horizon (lines: median over runs, dots: runs)")
    return fig


def _best_per_model(ctx: Context, runs: pl.DataFrame) -> list[dict[str, Any]]:
    """The best run (by the sweep metric) of each model type, in model order."""
    column = f"metrics.{ctx.metric}"
    out = []
    for model in sorted(runs["params.model"].unique(), key=_model_key):
        rows = runs.filter(pl.col("params.model") == model)
        if column in rows.columns:
            rows = rows.sort(column, descending=ctx.mode == "max", nulls_last=True)
        out.append(next(rows.head(1).iter_rows(named=True)))
    return out


def energy(ctx: Context) -> Figure:
    best = ctx.one()
    runs = _evaluated(ctx)
    env = best.get("params.env")
    if env is not None and "params.env" in runs.columns:
        runs = runs.filter(pl.col("params.env") == env)
    picks = _best_per_model(ctx, runs)
    frames = [(row, ctx.artifact(row["run_id"], ENERGY)) for row in picks]
    seqs = sorted(frames[0][1]["seq"].unique().to_list())[:3]
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, len(seqs), squeeze=False, sharex=True)[0]
    for ax, seq in zip(axes, seqs):
        truth = frames[0][1].filter(pl.col("seq") == seq)
        e_true = truth["energy_true"].to_numpy()
        ax.plot(truth["t"], e_true, "k-", lw=2.5, alpha=0.6, label="true (reference integrator)")
        shown = []
        for row, frame in frames:
            seq_rows = frame.filter(pl.col("seq") == seq)
            model = row.get("params.model")
            shown.append(seq_rows["energy_pred"].to_numpy())
            ax.plot(seq_rows["t"], shown[-1], "-", color=_colour(model), lw=1.2,
                    label=f"{model} ({row.get('tags.trial_id') or row['run_id'][:8]})")
            learned = seq_rows["learned_h"].to_numpy()
            if np.isfinite(learned).any():
                shifted = learned - learned[0] + seq_rows["energy_true"][0]
                shown.append(shifted)
                ax.plot(seq_rows["t"], shifted, ":", color=_colour(model), lw=1.5,
                        label=f"{model}: learned H (shifted to E(0))")
        symlog = _energy_scale(ax, e_true, shown)
        ax.set_xlabel("t (s), no forcing")
        ax.set_title(f"test sequence {seq}" + (" (symlog y: a prediction leaves 10x the true scale)" if symlog
                                               else ""), fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("energy (env units)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{ctx.sweep.name}: energy along a long free rollout, env {env}; best run of each model type")
    return fig


def _energy_scale(ax: Any, true: np.ndarray, predicted: list[np.ndarray]) -> bool:
    """Linear y around the true energy while the predictions stay within 10x its scale; beyond,
    symmetric-log y (linear within the true energy's scale), so a blow-up does not flatten the truth."""
    scale = max(float(np.abs(true).max()), float(np.ptp(true)), 1e-12)
    finite = np.concatenate([p[np.isfinite(p)] for p in predicted] + [true])
    lo, hi = float(finite.min()), float(finite.max())
    if max(abs(lo), abs(hi)) > 10 * scale:
        ax.set_yscale("symlog", linthresh=scale)
        return True
    pad = 0.05 * max(hi - lo, scale)
    ax.set_ylim(lo - pad, hi + pad)
    return False


def dt_generalisation(ctx: Context) -> Figure:
    runs = _evaluated(ctx)
    cols = [f"metrics.test/dt_x{f}_mse" for f in FACTORS]
    if not any(c in runs.columns for c in cols):
        raise AnalysisError("no run reported test/dt_x<f>_mse metrics")
    groups = _by_env(runs)
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    width = 0.8 / len(FACTORS)
    for ax, (env, group) in zip(axes, groups):
        models = sorted(group["params.model"].unique(), key=_model_key)
        top: list[str] = []
        drawn: list[float] = []
        for i, model in enumerate(models):
            rows = group.filter(pl.col("params.model") == model)
            values = [_finite(rows[c]) if c in rows.columns else np.array([]) for c in cols]
            if not any(len(v) for v in values):
                ax.text(i, 0.5, "not applicable\n(discrete-time:\nfixed dt)" if model in DISCRETE else "no value",
                        transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=8, color="0.35",
                        bbox={"facecolor": "0.93", "edgecolor": "0.7", "boxstyle": "round"})
                continue
            for j, (f, v) in enumerate(zip(FACTORS, values)):
                x = i + (j - (len(FACTORS) - 1) / 2) * width
                if len(v):
                    ax.bar(x, float(np.median(v)), width * 0.9, color=f"C{j}", alpha=0.75,
                           label=f"dt x {f}" if not any(t == f for t in top) else None)
                    ax.scatter(np.full(len(v), x), v, s=10, color="k", zorder=3)
                    top.append(f)
                    drawn.extend(v)
        if drawn and min(drawn) > 0 and max(drawn) / min(drawn) > 20:
            ax.set_yscale("log")
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_xticks(range(len(models)), [f"{m}\n(n={group.filter(pl.col('params.model') == m).height})"
                                           for m in models], fontsize=8)
        ax.set_title(f"env {env}" if env else "")
        ax.grid(True, axis="y", which="both", alpha=0.3)
        if top:
            ax.legend(fontsize=8, title="integrated at", title_fontsize=8)
    axes[0].set_ylabel("MSE over the span of 10 data steps (normalised)")
    fig.suptitle(f"{ctx.sweep.name}: generalisation to other time steps, no forcing (bars: median, dots: runs)")
    return fig


def _limits(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Axis limits: the true range with a margin, widened to the prediction but by at most 3 spans."""
    lo, hi = float(np.nanmin(true)), float(np.nanmax(true))
    span = max(hi - lo, 1e-9)
    finite = pred[np.isfinite(pred)]
    if len(finite):
        lo, hi = max(min(lo, float(finite.min())), lo - 3 * span), min(max(hi, float(finite.max())), hi + 3 * span)
    return lo - 0.05 * span, hi + 0.05 * span


def phase(ctx: Context) -> Figure:
    row = ctx.one()
    data = ctx.artifact(row["run_id"], PHASE).filter(pl.col("pair") == 0)
    seqs = sorted(data["seq"].unique().to_list())
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, len(seqs), squeeze=False)[0]
    for ax, seq in zip(axes, seqs):
        s = data.filter(pl.col("seq") == seq)
        q_true, v_true, q_pred, v_pred = (s[c].to_numpy() for c in ("q_true", "v_true", "q_pred", "v_pred"))
        ax.plot(q_true, v_true, "k-", lw=2.5, alpha=0.5, label="true")
        ax.plot(q_pred, v_pred, "-", color="tab:red", lw=1.2, label="predicted")
        ax.plot(q_true[:1], v_true[:1], "o", color="tab:green", ms=7, label="start", zorder=4)
        ax.set_xlim(*_limits(q_true, q_pred))
        ax.set_ylim(*_limits(v_true, v_pred))
        ax.set_xlabel(str(s["q_name"][0]))
        ax.set_ylabel(str(s["v_name"][0]))
        duration = float(s["t"].max())
        ax.set_title(f"test sequence {seq}: {len(s) - 1} steps ({duration:g} s)", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{ctx.sweep.name}: phase portrait, no forcing, best evaluated run "
                 f"{short_label(row, ['params.model', 'params.env'])}")
    return fig


PLOTS = {k.name: k for k in (
    PlotKind("horizon", horizon, help="test rollout MSE against horizon per model type (log y), one panel per env",
             size=(1100, 500)),
    PlotKind("energy", energy, (ENERGY,), "energy along a long free rollout, best run of each model, with the truth",
             (1200, 480)),
    PlotKind("dt-generalisation", dt_generalisation,
             help="MSE at dt x 0.5, 2, 4 per model type (discrete-time models: not applicable)", size=(1100, 500)),
    PlotKind("phase", phase, (PHASE,), "true against predicted phase portrait (q, v) of the best evaluated run",
             (1150, 440)),
)}
