"""The analysis commands of the ``dynsweep`` CLI: analyze, diff, failures, importance, plot, ui, cost.

Each reads one sweep from MLflow (see :mod:`analysis.source` for how a sweep is found) and
prints a table in ``--format table|markdown|csv|json`` (``--out DIR`` also writes it).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any, Callable

import polars as pl

from cliargs import STORAGE_HELP, TRACKING_URI_HELP, port, positive_int

from . import formats
from .errors import AnalysisError


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="the sweep: its folder, its name under --storage, or its name on --tracking-uri")
    _store_arguments(p)


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default="runs", help=STORAGE_HELP)
    p.add_argument("--tracking-uri", default=None, help=TRACKING_URI_HELP)


def _open(args: argparse.Namespace) -> tuple[Any, pl.DataFrame]:
    from .source import open_sweep

    sweep = open_sweep(args.sweep, args.storage, args.tracking_uri)
    return sweep, sweep.runs()


def _metric(args: argparse.Namespace, sweep: Any) -> tuple[str, str]:
    spec = sweep.spec()
    return (getattr(args, "metric", None) or spec.get("search.metric", "loss"),
            getattr(args, "mode", None) or spec.get("search.mode", "min"))


def run_analyze(args: argparse.Namespace) -> int:
    from .tables import generalisation, test_sets

    sweep, runs = _open(args)
    metric, mode = _metric(args, sweep)
    tags = sweep.parent().data.tags
    declared = [c for c in tags.get("dynsweep.table_columns", "").split(",") if c] or None
    columns = [c for part in args.columns for c in part.split(",") if c] if args.columns else None
    table, best = generalisation(runs, args.sort, metric, mode, declared, columns)
    what = "per test set: mean accel error %, theta_deg, radial_pct and the skewness measures" \
        if test_sets(runs) and not columns else f"{metric} and the family's results"
    formats.emit(table, args, f"{sweep.name}_generalisation", best,
                 title=f"{sweep.name}: {table.height} runs ({tags.get('dynsweep.family', 'unknown family')}); "
                       f"{what}; sorted by {args.sort or metric}; * = best")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from .source import search_frame
    from .tables import diff, sweep_variation

    if args.sweep and not args.runs:
        sweep, runs = _open(argparse.Namespace(sweep=args.sweep, storage=args.storage, tracking_uri=args.tracking_uri))
        formats.emit(sweep_variation(runs), args, f"{sweep.name}_variation",
                     title=f"{sweep.name}: parameters that vary across its {runs.height} runs")
        return 0
    if len(args.runs) < 2:
        raise AnalysisError("diff: give two or more runs (run ids, id prefixes or trial ids), or --sweep NAME alone")
    from .source import tracking_uri_for

    uri = (tracking_uri_for(args.sweep, args.storage, args.tracking_uri) if args.sweep
           else args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or _store_holding(args.runs, args.storage))
    client = _client(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    everything: pl.DataFrame | None = None
    rows = []
    for ident in args.runs:
        quoted = ident.replace("'", "")
        match = search_frame(client, experiments, f"tags.trial_id = '{quoted}'")
        if match.height == 0 and len(ident) == 32:
            match = search_frame(client, experiments, f"attributes.run_id = '{quoted}'")
        if match.height == 0:  # a run id prefix: MLflow cannot filter on one, so look through all runs once
            everything = search_frame(client, experiments) if everything is None else everything
            match = everything.filter(pl.col("run_id").str.starts_with(ident))
        if match.height != 1:
            raise AnalysisError(f"diff: {ident!r} matches {match.height} runs in {uri}; give a longer run id")
        rows.append(match)
    runs = pl.concat(rows, how="diagonal")
    table = diff(runs)
    formats.emit(table, args, "diff", title=f"{table.height} differing keys between {runs.height} runs")
    return 0


def _store_holding(idents: list[str], storage: str) -> str:
    """The store under ``storage`` (``<storage>/*/mlflow.db``) holding the run named by ``idents[0]``
    (a run id, id prefix or trial id), for ``diff`` without ``--sweep``; files there that are not
    MLflow stores are skipped (and named if the run is found nowhere)."""
    from .source import search_frame, store_problem

    stores = sorted(Path(storage).glob("*/mlflow.db"))
    skipped = []
    for db in stores:
        why = store_problem(db)
        if why:
            skipped.append(f"{db}: {why}")
            continue
        client = _client(f"sqlite:///{db.resolve()}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = search_frame(client, experiments)
        if runs.height and runs.filter(pl.col("run_id").str.starts_with(idents[0])
                                       | (pl.col("tags.trial_id") == idents[0] if "tags.trial_id" in runs.columns
                                          else pl.lit(False))).height:
            return f"sqlite:///{db.resolve()}"
    unread = f"; skipped, not MLflow stores: {'; '.join(skipped)}" if skipped else ""
    raise AnalysisError(f"diff: no sweep under {storage}/ holds a run {idents[0]!r} (looked in "
                        f"{len(stores) - len(skipped)} stores{unread}); say where with --sweep SWEEP or --tracking-uri")


def _client(uri: str) -> Any:
    from .source import client_for

    return client_for(uri)


def run_failures(args: argparse.Namespace) -> int:
    from .tables import failures

    sweep, runs = _open(args)
    table = failures(runs)
    failed = int(table["runs"].sum()) if table.height else 0
    formats.emit(table, args, f"{sweep.name}_failures",
                 title=f"{sweep.name}: {failed} of {runs.height} runs failed, in {table.height} groups")
    return 0


def run_importance(args: argparse.Namespace) -> int:
    from .importance import importances, marginals

    sweep, runs = _open(args)
    metric, mode = _metric(args, sweep)
    scores = importances(runs, sweep.spec(), metric, mode, args.evaluator)
    table = pl.DataFrame({"param": list(scores), "importance": [round(v, 4) for v in scores.values()]})
    formats.emit(table, args, f"{sweep.name}_importance",
                 title=f"{sweep.name}: importance for {metric} ({args.evaluator}, normalised)")
    formats.emit(marginals(runs, metric), args, f"{sweep.name}_marginals",
                 title=f"\nmean {metric} per parameter value (completed runs)")
    return 0


def run_optuna(args: argparse.Namespace) -> int:
    from .importance import export_study

    sweep, runs = _open(args)
    metric, mode = _metric(args, sweep)
    path = args.out or study_path(args)
    count = export_study(runs, sweep.spec(), metric, mode, path, sweep.name)
    print(f"{count} trials of {sweep.name} as an Optuna study in {path}\nopen it with: optuna-dashboard "
          f"sqlite:///{path.resolve()}")
    return 0


def study_path(args: argparse.Namespace) -> Path:
    """``<sweep folder>/optuna.db`` when the sweep has a folder here, else ``./<name>_optuna.db``."""
    for folder in (Path(args.sweep), Path(args.storage) / args.sweep):
        if (folder / "sweep.json").is_file():
            return folder / "optuna.db"
    return Path(f"{Path(args.sweep).name}_optuna.db")


def run_cost(args: argparse.Namespace) -> int:
    from .cost import cost

    sweep, runs = _open(args)
    table, totals = cost(runs, sweep.spec())
    formats.emit(table, args, f"{sweep.name}_cost", title=f"{sweep.name}: trial-seconds by state")
    if args.format in ("table", "markdown"):
        print(f"spent: {totals['spent_s']:.1f} trial-s; {totals['s_per_unit']:.4g} s per unit of budget "
              f"(full budget {totals['budget']:.0f})")
        print(f"without early stopping: {totals['without_early_stopping_s']:.1f} trial-s "
              f"(early stopping saved {totals['saved_s']:.1f} trial-s"
              f"{', %.0f %%' % (100 * totals['saved_s'] / totals['without_early_stopping_s']) if totals['without_early_stopping_s'] > 0 else ''})")
        if math.isnan(totals["grid_configs"]):
            print("full grid: not defined (continuous parameters)")
        else:
            print(f"full grid: {totals['grid_configs']:.0f} configurations x full budget = {totals['full_grid_s']:.1f} trial-s")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from .plots import plot

    sweep, runs = _open(args)
    metric, mode = _metric(args, sweep)
    out = args.out or Path("plots") / sweep.name
    for kind in args.kinds:
        path = plot(sweep, runs, kind, metric, mode, args, out)
        print(f"{kind}: {path} (also in MLflow: parent run {sweep.parent_id[:8]}, plots/{path.name})")
    return 0


def run_ui(args: argparse.Namespace) -> int:
    from .source import varying_params
    from .tables import declared_columns
    from .ui import serve

    sweep, runs = _open(args)
    metric, mode = _metric(args, sweep)
    ids = runs.sort(f"metrics.{metric}", descending=mode == "max", nulls_last=True)["run_id"].head(args.compare).to_list() \
        if f"metrics.{metric}" in runs.columns else runs["run_id"].head(args.compare).to_list()
    params = [c.removeprefix("params.") for c in varying_params(runs)]
    metrics = [c.removeprefix("metrics.") for c in runs.columns if c.startswith("metrics.")]
    declared = [c for c in sweep.parent().data.tags.get("dynsweep.table_columns", "").split(",") if c]
    return serve(sweep, args.host, args.port, ids, metric, mode, params, metrics, declared_columns(runs, declared))


def register(sub: Any) -> None:
    """Add the analysis commands to the ``dynsweep`` sub-command parser."""
    from .kinds import EVALUATORS, KINDS

    def add(name: str, help_text: str, handler: Callable[[argparse.Namespace], int], sweep: bool = True,
            output: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if sweep:
            _sweep_arguments(p)
        if output:
            formats.add_output_arguments(p)
        p.set_defaults(handler=handler)
        return p

    p = add("analyze", "one row per run: swept parameters, the sweep metric and the family's test results",
            run_analyze)
    p.add_argument("--sort", default=None, help="column to sort by (default: the sweep metric, best first)")
    p.add_argument("--columns", action="append", default=[], metavar="NAMES",
                   help="only these result columns (comma-separated names or patterns, e.g. 'val_*,vpt*')")
    p = add("diff", "what differs between runs (parameters, dataset hashes, code commit)", run_diff, sweep=False)
    p.add_argument("runs", nargs="*", help="run ids, id prefixes or trial ids")
    p.add_argument("--store", dest="sweep", default=None, help=argparse.SUPPRESS)  # the old name of --sweep
    p.add_argument("--sweep", dest="sweep", default=None, metavar="SWEEP",
                   help="the sweep (folder, or name under --storage) whose MLflow store holds the runs (default: "
                        "$MLFLOW_TRACKING_URI, else the sweep under --storage holding the first run); without "
                        "runs: the parameters that vary within this sweep")
    _store_arguments(p)
    add("failures", "failed runs grouped by class and message, with the parameters they share", run_failures)
    p = add("importance", "parameter importance (Optuna fANOVA or PED-ANOVA) and marginal means", run_importance)
    p.add_argument("--metric", default=None, help="default: the sweep's search metric")
    p.add_argument("--mode", choices=("min", "max"), default=None, help="default: the sweep's search mode")
    p.add_argument("--evaluator", choices=EVALUATORS, default="fanova",
                   help="fanova: variance of the metric explained (default); ped-anova: what the best 10 %% share")
    add("cost", "trial-seconds by state, and what early stopping saved against the full grid", run_cost)
    p = add("optuna", "the sweep's trials as an Optuna study in a SQLite file (for optuna-dashboard)", run_optuna,
            output=False)
    p.add_argument("--out", type=Path, default=None, help="the file (default: <sweep folder>/optuna.db)")
    p.add_argument("--metric", default=None, help="the study's objective (default: the sweep's search metric)")
    p.add_argument("--mode", choices=("min", "max"), default=None, help="default: the sweep's search mode")
    p = add("plot", f"PNG figures ({', '.join(KINDS)}), also logged to the sweep's parent run", run_plot,
            output=False)
    p.add_argument("kinds", nargs="+", choices=KINDS, metavar="KIND", help=", ".join(KINDS))
    p.add_argument("--out", type=Path, default=None, help="folder for the PNGs (default: plots/<sweep>)")
    p.add_argument("--metric", default=None, help="metric to rank runs / colour by (default: the sweep's)")
    p.add_argument("--mode", choices=("min", "max"), default=None, help="default: the sweep's search mode")
    p.add_argument("--runs", nargs="*", default=None, help="run ids / trial ids to draw (default: the --top best)")
    p.add_argument("--top", type=positive_int, default=6, help="without --runs: draw the best N runs (default 6)")
    p.add_argument("--x", default=None, help="heatmap: parameter on the x axis")
    p.add_argument("--y", default=None, help="heatmap: parameter on the y axis")
    p.add_argument("--facet", default=None, help="heatmap: one panel per value of this parameter (columns)")
    p.add_argument("--facet-row", default=None, help="heatmap: one panel per value of this parameter (rows)")
    p.add_argument("--test-set", default=None, help="box/trajectory: test set (default: the first)")
    p.add_argument("--curve-metric", default=None,
                   help="curves: metric against step (default: the sweep's metric; train_loss when that is a test/ metric)")
    p = add("ui", "start the MLflow UI on the sweep's store (127.0.0.1) and print the URLs of its runs (best first, "
                  "swept parameters as columns), its charts (parallel coordinates first) and its best runs compared",
            run_ui, output=False)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port, default=5000, help="default: 5000; 0: a free port")
    p.add_argument("--compare", type=positive_int, default=10, help="runs in the comparison URL (the best first)")
