"""``dynsweep plot <sweep> KIND``: the figures users drew by hand, from MLflow data.

Every figure is drawn from metrics, metric histories, parameters, or the Parquet artefacts a
family writes at its final evaluation (``checkpoint/artifacts/*.parquet`` of a run, each with
its format in the footer): nothing here loads a model. The kinds live in one module per family
(``plots_<family>.py``) plus :mod:`.plots_common` for the kinds every family has; the sweep's
parent run says which kinds apply to its family (tag ``dynsweep.plot_kinds``, written by the
driver from the family's registry record), and any other kind is refused in one line.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from . import (plots_common, plots_latentode, plots_pendulum, plots_regression, plots_timestepper, plots_twobody,
               plots_visual, plots_worldmodels)
from .errors import AnalysisError
from .plotbase import DPI, Context, PlotKind
from .source import Sweep

ALL: dict[str, PlotKind] = {**plots_common.PLOTS, **plots_twobody.PLOTS, **plots_pendulum.PLOTS,
                            **plots_worldmodels.PLOTS, **plots_regression.PLOTS, **plots_timestepper.PLOTS,
                            **plots_visual.PLOTS, **plots_latentode.PLOTS}
"""Every plot kind by name (:data:`analysis.kinds.KINDS` lists the same names for the CLI)."""


def applicable(sweep: Sweep) -> tuple[str | None, list[str] | None]:
    """``(family, kinds)`` from the sweep's parent run; kinds is None for sweeps recorded before
    families declared them (then every kind is tried)."""
    tags = sweep.parent().data.tags
    kinds = tags.get("dynsweep.plot_kinds")
    return tags.get("dynsweep.family"), (kinds.split(",") if kinds else None)


def plot(sweep: Sweep, runs: pl.DataFrame, kind: str, metric: str, mode: str, args: Any, out: Path) -> Path:
    """Draw ``kind`` into ``out/<kind>.png``, log it to the sweep's parent run (``plots/``); with
    ``--runs`` into ``<kind>_<runs>.png``, so a figure of chosen runs never replaces the sweep's own."""
    if kind not in ALL:
        raise AnalysisError(f"plot kind {kind!r} is not known; known: {', '.join(ALL)}")
    family, kinds = applicable(sweep)
    if kinds is not None and kind not in kinds:
        raise AnalysisError(f"plot {kind!r} does not apply to a {family} sweep; kinds for {family}: {', '.join(kinds)}")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small files: no bars
    chosen = ALL[kind]
    from matplotlib import rc_context

    # constrained layout from the start: colorbars and legends are placed with it, at the final size
    with tempfile.TemporaryDirectory(prefix="dynsweep-plot-") as cache, \
            rc_context({"figure.constrained_layout.use": True}):
        fig = chosen.draw(Context(sweep, runs, metric, mode, args, Path(cache), chosen))
    fig.set_size_inches(chosen.size[0] / DPI, chosen.size[1] / DPI)
    out.mkdir(parents=True, exist_ok=True)
    chosen_runs = getattr(args, "runs", None)
    name = kind if not chosen_runs else f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]', '', '_'.join(chosen_runs))[:60]}"
    path = out / f"{name}.png"
    tmp = out / f".{name}.tmp.png"
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)
    sweep.client.log_artifact(sweep.parent_id, str(path), artifact_path="plots")
    return path


OVERVIEW = ("curves", "parallel")
"""Kinds drawn onto every sweep's parent run when the sweep ends."""


def overview(sweep: Sweep, metric: str, mode: str, out: Path) -> list[str]:
    """Draw the :data:`OVERVIEW` kinds for a finished sweep (each logged to its parent run);
    returns one line per kind: where it went, or why it could not be drawn."""
    import argparse

    args = argparse.Namespace(runs=None, top=8, x=None, y=None, test_set=None, curve_metric=None)
    runs = sweep.runs()
    lines = []
    for kind in OVERVIEW:
        try:
            lines.append(f"{kind}: {plot(sweep, runs, kind, metric, mode, args, out)}")
        except AnalysisError as err:
            lines.append(f"{kind}: not drawn ({err})")
    return lines
