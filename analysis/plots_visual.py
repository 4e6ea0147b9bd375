"""Visual world-model plot kinds:

- ``frames``: a strip of true and predicted frames of the open-loop test rollout of one run (the
  best evaluated, or the first of ``--runs``) at chosen horizons, with their absolute difference,
  for the first test sequences (artefact ``visual.frames``);
- ``pixel-horizon``: test pixel MSE against the horizon of the best evaluated run of each
  predictor, with the copy-the-last-context-frame baseline (artefact ``visual.horizon_curve``); log y.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .plotbase import Context, PlotKind, evaluated_mask

FRAMES = "visual.frames/1"
HORIZON_CURVE = "visual.horizon_curve/1"
PREDICTOR_ORDER = ("spatial_jump", "spatial_lstm", "spatial_ode", "spatial_newtonian", "spatial_hamiltonian")
STRIP_HORIZONS = (0, 1, 2, 5, 10, 20, 30, 50)
"""Horizons shown in the strip (those the rollout has)."""
SHOWN_SEQS = 2
"""Test sequences drawn in the strip (of those the artefact keeps)."""


def _image(raw: bytes, channels: int, size: int) -> np.ndarray:
    """``uint8`` bytes ``(C, S, S)`` -> an image ``(S, S)`` (grey) or ``(S, S, 3)`` (RGB) in [0, 1]."""
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(channels, size, size).astype(float) / 255.0
    return arr[0] if channels == 1 else arr.transpose(1, 2, 0)


def frames(ctx: Context) -> Figure:
    row = ctx.one()
    table = ctx.artifact(row["run_id"], FRAMES)
    seqs = sorted(table["seq"].unique().to_list())[:SHOWN_SEQS]
    have = set(table["horizon"].to_list())
    horizons = [h for h in STRIP_HORIZONS if h in have] or sorted(have)[:8]
    fig = Figure(layout="constrained")
    axes = fig.subplots(3 * len(seqs), len(horizons), squeeze=False)
    for i, seq in enumerate(seqs):
        rows = {r["horizon"]: r for r in table.filter(pl.col("seq") == seq).iter_rows(named=True)}
        for j, h in enumerate(horizons):
            r = rows[h]
            true, pred = (_image(r[c], r["channels"], r["size"]) for c in ("frame_true", "frame_pred"))
            diff = np.abs(true - pred) if true.ndim == 2 else np.abs(true - pred).max(-1)
            for k, (img, cmap) in enumerate(((true, "gray"), (pred, "gray"), (diff, "magma"))):
                ax = axes[3 * i + k, j]
                ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0 and k == 0:
                    ax.set_title(f"h={h}" + (" (context)" if h == 0 else f"\n{r['t']:.2f} s"), fontsize=8)
                if j == 0:
                    ax.set_ylabel(f"seq {seq}\n" + ("true", "predicted", "|difference|")[k], fontsize=8)
    trial = row.get("tags.trial_id") or row["run_id"][:8]
    fig.suptitle(f"{ctx.sweep.name}: open-loop test rollout of {trial} (predictor {row.get('params.predictor')}), "
                 "true / predicted / |difference| frames by horizon", fontsize=10)
    return fig


def _predictor_key(name: Any) -> tuple[int, str]:
    return (PREDICTOR_ORDER.index(name) if name in PREDICTOR_ORDER else len(PREDICTOR_ORDER), str(name))


def pixel_horizon(ctx: Context) -> Figure:
    runs = ctx.chosen(evaluated=True) if ctx.args.runs else ctx.runs.filter(evaluated_mask(ctx.runs))
    if runs.is_empty():
        raise AnalysisError("no run of this sweep reached its final evaluation: nothing to draw")
    if "params.predictor" not in runs.columns:
        runs = runs.with_columns(pl.lit("(default)").alias("params.predictor"))
    column = f"metrics.{ctx.metric}"
    fig = Figure(layout="constrained")
    ax = fig.subplots()
    baseline = None
    for predictor in sorted(runs["params.predictor"].unique().to_list(), key=_predictor_key):
        group = runs.filter(pl.col("params.predictor") == predictor)
        if column in group.columns:
            group = group.sort(column, descending=ctx.mode == "max", nulls_last=True)
        best = next(group.head(1).iter_rows(named=True))
        curve = ctx.artifact(best["run_id"], HORIZON_CURVE).sort("horizon")
        colour = f"C{_predictor_key(predictor)[0] % 10}"
        trial = best.get("tags.trial_id") or best["run_id"][:8]
        ax.plot(curve["horizon"], curve["pixel_mse"], "-", color=colour, lw=1.6,
                label=f"{predictor} ({trial}, best of {group.height})")
        baseline = curve if baseline is None else baseline
    assert baseline is not None
    ax.plot(baseline["horizon"], baseline["copy_last_mse"], "k--", lw=1.4, label="copy the last context frame")
    ax.set_yscale("log")
    ax.set_xlabel("horizon (samples after the last context frame, open loop under the true actions)")
    ax.set_ylabel("test pixel MSE (pixel values in [0, 1])")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{ctx.sweep.name}: test pixel error against horizon, best run of each predictor", fontsize=10)
    return fig


PLOTS = {k.name: k for k in (
    PlotKind("frames", frames, (FRAMES,), "true / predicted / |difference| frames of the open-loop test rollout by "
             "horizon (best evaluated run)", (1100, 820)),
    PlotKind("pixel-horizon", pixel_horizon, (HORIZON_CURVE,),
             "test pixel MSE against horizon, best run of each predictor, with the copy-last-frame baseline",
             (950, 560)),
)}
