"""What every plot kind shares: the :class:`PlotKind` record, the :class:`Context` a kind draws
from, run selection and labels, and reading a run's artefacts with their format checked.

A family's final evaluation writes Parquet artefacts whose footer names their format
(``dynsweep.format`` = ``<family>.<what>``, ``dynsweep.format_version``); a kind that reads
artefacts states the format ids it reads and :func:`read_artifact` refuses any other file, so
analysis dispatches on formats, never on a family's file or column names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import polars as pl
from matplotlib.figure import Figure

from .errors import AnalysisError
from .formats import cell
from .importance import completed
from .source import Sweep, varying_params

ARTIFACTS = "checkpoint/artifacts"
"""Where a run's artefacts are in MLflow (they travel inside its final checkpoint)."""
FORMAT_KEY = b"dynsweep.format"
VERSION_KEY = b"dynsweep.format_version"


@dataclass(frozen=True)
class PlotKind:
    """One ``dynsweep plot`` kind: ``draw(ctx) -> Figure``, the artefact formats it reads
    (``"<id>/<version>"``; empty for kinds drawn from metrics and parameters), one line of help,
    and the PNG's size in pixels (``width, height``; the figure is resized to it when saved)."""

    name: str
    draw: Callable[["Context"], Figure]
    reads: tuple[str, ...] = ()
    help: str = ""
    size: tuple[int, int] = (880, 605)

DPI = 110
"""Dots per inch of every PNG (so ``size / DPI`` is the figure size in inches)."""


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
    """A run's legend label: its trial id, then up to three swept parameters, one a line."""
    trial = row.get("tags.trial_id") or row["run_id"][:8]
    keys = "\n".join(f"{p.removeprefix('params.')}={cell(row.get(p))}" for p in params[:3])
    return f"{trial}\n{keys}" if keys else trial


def short_label(row: dict[str, Any], params: list[str]) -> str:
    """A run's label on one line (legends with many runs)."""
    return label(row, params).replace("\n", " ")


class Context:
    """What a plot needs: the sweep, its runs, the metric, the CLI arguments, a download cache."""

    def __init__(self, sweep: Sweep, runs: pl.DataFrame, metric: str, mode: str, args: Any, cache: Path,
                 kind: PlotKind | None = None) -> None:
        self.sweep, self.runs, self.metric, self.mode, self.args, self.cache = sweep, runs, metric, mode, args, cache
        self.kind = kind
        self.params = varying_params(runs)

    def chosen(self, evaluated: bool = False) -> pl.DataFrame:
        """The runs to draw (``--runs``, else the ``--top`` best); with ``evaluated``, among the runs
        that reached their final evaluation (runs stopped early or that failed have no artefacts)."""
        runs = self.runs
        if evaluated and not self.args.runs:
            runs = runs.filter(evaluated_mask(runs))
            if runs.is_empty():
                raise AnalysisError("no run of this sweep reached its final evaluation (its artefacts come with "
                                    "it): nothing to draw")
        return select_runs(runs, self.metric, self.mode, self.args.runs, self.args.top)

    def one(self) -> dict[str, Any]:
        """The single run a per-run plot draws: the first of ``--runs``, else the best evaluated one."""
        return next(self.chosen(evaluated=True).head(1).iter_rows(named=True))

    def artifact(self, run_id: str, fmt: str) -> pl.DataFrame:
        """The run's artefact of format ``fmt`` (``"<id>/<version>"``, one of this kind's ``reads``)."""
        return read_artifact(self.sweep, run_id, fmt, self.cache)

    def metric_history(self, run_id: str, metric: str) -> list[tuple[int, float]]:
        """``(step, value)`` of one metric of one run, by step."""
        return sorted((m.step, m.value) for m in self.sweep.client.get_metric_history(run_id, metric))


def evaluated_mask(runs: pl.DataFrame) -> pl.Expr:
    """Runs that reached their final evaluation: any ``test/`` metric, a last ``step`` equal to the
    run's ``total_steps`` (families whose final metrics have no ``test/`` prefix), or a run that its
    family's patience rule ended (``stopped_early`` = 1)."""
    conds = [pl.col(c).is_not_null() for c in runs.columns if c.startswith("metrics.test/")]
    if {"metrics.step", "metrics.total_steps"} <= set(runs.columns):
        conds.append(pl.col("metrics.step") >= pl.col("metrics.total_steps"))
    if "metrics.stopped_early" in runs.columns:  # patience ended training: the best model was evaluated
        conds.append(pl.col("metrics.stopped_early") == 1.0)
    return pl.any_horizontal(conds) if conds else pl.lit(False)


def _list_artifacts(sweep: Sweep, run_id: str) -> list[str]:
    try:
        return [a.path.rsplit("/", 1)[-1] for a in sweep.client.list_artifacts(run_id, ARTIFACTS)]
    except Exception:  # MLflow raises several types for a missing folder
        return []


def read_artifact(sweep: Sweep, run_id: str, fmt: str, cache: Path) -> pl.DataFrame:
    """The Parquet artefact of ``run_id`` whose footer says format ``fmt`` (``"<id>/<version>"``).

    Files are downloaded once into ``cache``; each candidate's footer is read (a few KB) and the
    first of the right format and version is returned. Refuses with one line when none is."""
    import pyarrow.parquet as pq

    want_id, _, want_version = fmt.partition("/")
    folder = cache / run_id
    if not folder.exists():
        folder.mkdir(parents=True)
        for name in _list_artifacts(sweep, run_id):
            if name.endswith(".parquet"):
                try:
                    local = sweep.client.download_artifacts(run_id, f"{ARTIFACTS}/{name}", str(folder))
                except Exception:
                    continue
                if Path(local) != folder / name:
                    Path(local).replace(folder / name)
    found = []
    for path in sorted(folder.glob("*.parquet")):
        meta = pq.read_metadata(path).metadata or {}
        fid = (meta.get(FORMAT_KEY) or b"").decode()
        version = (meta.get(VERSION_KEY) or b"").decode()
        found.append(f"{path.name} ({fid or 'no format'}{'/' + version if version else ''})")
        if fid == want_id and (not want_version or version == want_version):
            return pl.read_parquet(path)
    raise AnalysisError(f"run {run_id[:8]} has no artefact of format {fmt} (it has: {', '.join(found) or 'none'}); "
                        "was it evaluated by a version of its family that writes it?")
