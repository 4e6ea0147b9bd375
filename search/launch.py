"""``dynsweep launch`` and ``dynsweep validate``: run a sweep end to end.

Validation happens first and writes nothing. Then: the sweep folder ``<storage>/<name>/`` gets
the spec, Ray starts with its temp folder inside it, the Tuner runs with the MLflow tracker and
a live progress line, and at the end a table of the top trials, the totals (trials by state,
trial-seconds) and the command that opens the MLflow UI are printed. Failed trials do not stop
the sweep. Exit status (:func:`exit_status`): 0 when at least one trial finished (completed or
stopped early by the scheduler), 1 when none did (every trial failed or timed out: CI and batch
schedulers see a failed sweep), 2 for a mistake in the input (nothing was run), 130 when
interrupted (the sweep can be resumed).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import functools
import json
import logging
import math
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray.tune import Callback

from trainables.common.errors import ConfigError, DynsweepError

from .outcome import RANKED
from .spec import SweepSpec, check_resources, load_spec
from .sweep_folder import SPEC, SweepFolder, sha256_file
from .trainable import resolve_config
from .provenance import versions
from .version import package_version


def exit_status(summary: dict[str, Any]) -> int:
    """The driver's exit status for a sweep that ran (see the module docstring); says why when 1."""
    if summary["interrupted"]:
        return 130
    if summary["finished"] + summary["stopped_early"] > 0:
        return 0
    print(f"no trial finished ({summary['trials']} trials): exit status 1", file=sys.stderr)
    return 1


def _machine_gpus() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    return len(list(Path("/dev").glob("nvidia[0-9]*")))


def run_launch(args: argparse.Namespace) -> int:
    from .launch_args import apply_cluster_arguments

    apply_cluster_arguments(args)
    overrides = list(args.overrides) + ([f"storage={args.storage}"] if args.storage else [])
    spec = load_spec(args.spec, overrides)
    if not args.address:
        cpus = args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1)
        gpus = args.num_gpus if args.num_gpus is not None else float(_machine_gpus())
        check_resources(spec, cpus, gpus)
    folder = SweepFolder(spec.sweep_dir)
    if folder.is_sweep() or folder.tune_dir.exists():
        raise ConfigError(f"{args.spec}: sweep folder {folder.path} already holds a sweep named {spec.name!r}; "
                          "choose another `name` (or --set name=...), or continue it with "
                          f"`dynsweep resume {folder.path}`")
    summary = launch(spec, args.tracking_uri, args.num_cpus, args.num_gpus, args.address, quiet=args.quiet,
                     verbose=args.verbose, progress_every=args.progress_every)
    return exit_status(summary)


@dataclass
class Resume:
    """How ``dynsweep resume`` continues a sweep (see ``search.resume``)."""

    errored: str = "skip"  # skip | resume (from the last checkpoint) | restart (from scratch)
    tracking_uri: str | None = None
    resources_changed: bool = False


def launch(spec: SweepSpec, tracking_uri: str | None = None, num_cpus: float | None = None,
           num_gpus: float | None = None, address: str | None = None, quiet: bool = False,
           resume: Resume | None = None, verbose: bool = False, progress_every: float | None = None) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the sweep; returns its summary (counts by state,
    failure classes, best trial, seconds). Holds the sweep's driver lock throughout.

    A new sweep that fails before its first trial started (Ray could not start, Ctrl-C during
    start-up, ...) leaves no folder behind, so its name stays free. ``verbose``: Ray's own
    messages and the trials' output reach the terminal. ``progress_every``: seconds between
    progress lines when stderr is not a terminal (a batch job's log; default 30)."""
    folder = SweepFolder(spec.sweep_dir)
    created = resume is None and not folder.path.exists()
    try:
        return _locked(spec, folder, tracking_uri, num_cpus, num_gpus, address, quiet, resume, verbose,
                       progress_every)
    except BaseException as err:
        from .failures import disk_full, out_of_space
        from .journal import Journal

        if created and folder.path.is_dir() and _no_trial_started(folder, Journal):
            shutil.rmtree(folder.path, ignore_errors=True)
        full = disk_full(err)
        if full is None and not isinstance(err, (KeyboardInterrupt, DynsweepError)) and out_of_space(folder.path):
            full = (None, f"{type(err).__name__} while the disk was full")
        if full is None:
            raise
        with contextlib.suppress(Exception):
            folder.write_meta(state="interrupted")
        raise DiskFullError(disk_full_message(folder.path, *full, resumable=folder.path.is_dir())) from None


def _no_trial_started(folder: SweepFolder, journal: Any) -> bool:
    """Whether the sweep's journal holds no event (an unreadable one counts as holding some)."""
    try:
        return not journal(folder.path).read()
    except Exception:  # noqa: BLE001 - never hide the error being handled
        return False


class DiskFullError(DynsweepError):
    """The disk filled up during a sweep."""


def disk_full_message(sweep_dir: Path, file: str | None, reason: str, resumable: bool) -> str:
    """One line: where space ran out, how much is free there, and how to go on."""
    where = Path(file) if file else sweep_dir
    probe = next((p for p in (where, *where.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free / 1e6
    then = (f"free some space, then `dynsweep resume {sweep_dir}` continues the sweep" if resumable
            else "free some space and launch it again")
    return f"no space left on device writing {where} ({free:.0f} MB free there): the sweep stopped; {then}"


def _locked(spec: SweepSpec, folder: SweepFolder, tracking_uri: str | None, num_cpus: float | None,
            num_gpus: float | None, address: str | None, quiet: bool, resume: Resume | None, verbose: bool,
            progress_every: float | None) -> dict[str, Any]:
    with folder.driver_lock("resume" if resume else "launch"):
        quiet_ray()
        if resume is None:
            from .tracking import check_name_free, default_tracking_uri

            uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking_uri
                   or default_tracking_uri(folder.path))
            check_name_free(uri, spec.experiment or spec.name, spec.name, folder.path)
            folder.path.mkdir(parents=True, exist_ok=True)
            (folder.path / SPEC).write_text(yaml.safe_dump(spec.raw, sort_keys=False))
            folder.write_meta(dynsweep_version=package_version(), name=spec.name, family=spec.family,
                              created=dt.datetime.now().isoformat(timespec="seconds"),
                              spec_sha256=sha256_file(folder.path / SPEC), tracking_uri=folder.stored_uri(uri),
                              datasets=os.environ["DYNSWEEP_DATASETS"], metric=spec.metric, mode=spec.mode,
                              num_samples=spec.total_trials(), state="running", versions=versions())
        else:
            uri = resume.tracking_uri or folder.tracking_uri()
            folder.write_meta(state="running", tracking_uri=folder.stored_uri(uri))
        summary = _run(spec, folder, uri, num_cpus, num_gpus, address, quiet, resume, verbose, progress_every)
        folder.write_meta(state="interrupted" if summary["interrupted"] else "finished",
                          trials=summary["trials"], best=summary["best"],
                          tracking_pending=summary.get("tracking_pending", 0))
        return summary


def _run(spec: SweepSpec, folder: SweepFolder, uri: str, num_cpus: float | None, num_gpus: float | None,
         address: str | None, quiet: bool, resume: Resume | None, verbose: bool = False,
         progress_every: float | None = None) -> dict[str, Any]:
    from .journal import Journal, completed_after_snapshot
    from .runtime import SecondInterrupt, dir_size, ray_session, remove_ray_folders, sigterm_as_sigint
    from .tracking import MlflowTracker, Resumed
    from .tuner import TrialTimeLimit, build_tuner, restore_tuner, set_trial_resources

    start = time.perf_counter()
    stopper = TrialTimeLimit(spec.trial_time_limit_s) if spec.trial_time_limit_s else None
    resumed = None
    if resume is not None:
        snapshot = folder.trials()
        known = {t.trial_id: t.status for t in snapshot}
        restarted = {t.experiment_tag: t.trial_id for t in snapshot if t.status == "ERROR"} \
            if resume.errored == "restart" else {}
        resumed = Resumed(known, completed_after_snapshot(Journal(folder.path).read(), known), restarted)
    swept = {p.name: list(p.args) if p.kind in ("choice", "grid") else [] for p in spec.params if p.kind != "fixed"}
    if address:
        record_dataset_hashes(spec)
    remove_ray_folders(folder.path)  # a dead driver's Ray session folders (we hold the driver lock)
    stale = Path(str(folder.read_meta().get("ray_temp") or "/"))
    if stale.parent == Path("/tmp") and stale.name.startswith("dynsweep-ray-"):  # named so by older versions
        shutil.rmtree(stale, ignore_errors=True)
    tracker = MlflowTracker(uri, spec.experiment or spec.name, folder.path, spec.raw, spec.family,
                            max_t=spec.max_t if spec.scheduler == "asha" else None, time_attr=spec.time_attr,
                            timed_out=stopper.timed_out if stopper else None, resume=resumed, metric=spec.metric,
                            mode=spec.mode, swept=swept,
                            resolve=functools.partial(resolve_config, spec.family, spec.base,
                                                      conditional=[p for p in spec.params if p.when], gpu=spec.gpu))
    interrupts = SecondInterrupt(folder.path)
    progress = Progress(spec, start, quiet, every_s=progress_every, tracker=tracker, interrupts=interrupts)
    try:
        with ray_session(folder.path, num_cpus, num_gpus, address, verbose=verbose) as temp, sigterm_as_sigint():
            folder.write_meta(ray_temp=str(temp) if temp else None)
            progress.temp = temp
            if resume is None:
                tuner = build_tuner(spec, [tracker, progress], stopper, stream_output=verbose)
            else:
                if resume.resources_changed:
                    again = ("PENDING", "RUNNING", "PAUSED") + (("ERROR",) if resume.errored != "skip" else ())
                    set_trial_resources(folder.tune_dir, {"cpu": spec.cpu, "gpu": spec.gpu}, again)
                tuner = restore_tuner(spec, [tracker, progress], stopper, resume.errored, resumed.completed,
                                      stream_output=verbose)
            with interrupts:  # Tune handles the first Ctrl-C; later ones must not cut its clean stop short
                tuner.fit()
                trials = progress.trials
                tracker.end_unfinished(trials)
    except BaseException:
        tracker.abandon(started=bool(tracker.started))
        raise
    try:
        summary = _finish(spec, folder, tracker, interrupts, trials, stopper, start)
    except BaseException:
        tracker.abandon(started=True)
        raise
    summary["ray_temp_peak_mb"] = progress.peak_temp / 1e6
    summary["ray_temp_after_mb"] = dir_size(temp) / 1e6 if temp else 0.0
    summary["tracking_pending"] = tracker.pending()
    print_summary(spec, summary, uri)
    if tracker.write_errors():
        print(f"warning: {tracker.write_errors()}", file=sys.stderr)
    if summary["tracking_pending"]:
        print(f"MLflow at {uri} could not be reached at the end of the sweep: its records ({summary['tracking_pending']} "
              f"writes) are kept in {folder.path / 'tracking_journal.jsonl'}; once it is back, "
              f"`dynsweep resume {folder.path}` writes them (nothing is trained again)")
    elif not summary["interrupted"] and not interrupts.pressed and os.environ.get(EXTRAS_ENV, "1") != "0":
        for line in sweep_extras(spec, uri):
            print(line)
    return summary


def _finish(spec: SweepSpec, folder: SweepFolder, tracker: Any, interrupts: Any, trials: list[Any], stopper: Any,
            start: float) -> dict[str, Any]:
    """The summary, ``summary.csv`` and the parent run; written whatever the user presses meanwhile."""
    with interrupts:
        folder.write_meta(ray_temp=None)
        summary = summarise(spec, trials, tracker, stopper, time.perf_counter() - start)
        table = folder.path / "summary.csv"
        write_table(table, summary["rows"])
        best = summary["rows"][0] if summary["rows"] and math.isfinite(_num(summary["best"])) else None
        tracker.finish_sweep({k: v for k, v in summary.items() if isinstance(v, (int, float))}, table,
                             "KILLED" if summary["interrupted"] else "FINISHED",
                             best=(best["trial"], float(best[spec.metric])) if best else None)
    return summary


EXTRAS_ENV = "DYNSWEEP_SWEEP_EXTRAS"
"""``0``: a sweep ends without its plots and Optuna study (``dynsweep plot``/``dynsweep optuna``
write them later); for many small sweeps (CI), where they cost a few seconds each."""


def sweep_extras(spec: SweepSpec, uri: str) -> list[str]:
    """What every finished sweep gets from MLflow: its loss curves and parallel coordinates in
    ``<sweep>/plots`` and on the parent run (``dynsweep plot`` draws more), and its trials as an
    Optuna study in ``<sweep>/optuna.db`` (``dynsweep optuna``). Never fails the sweep."""
    from analysis.importance import export_study
    from analysis.plots import overview
    from analysis.source import open_sweep

    try:
        sweep = open_sweep(str(spec.sweep_dir), tracking_uri=uri)
        lines = [f"plot {line}" for line in overview(sweep, spec.metric, spec.mode, spec.sweep_dir / "plots")]
        path = spec.sweep_dir / "optuna.db"
        count = export_study(sweep.runs(), sweep.spec(), spec.metric, spec.mode, path, spec.name)
        return lines + [f"Optuna study ({count} trials): optuna-dashboard sqlite:///{path.resolve()}"]
    except KeyboardInterrupt:
        return ["plots and Optuna study: skipped (interrupted; `dynsweep plot` and `dynsweep optuna` write them)"]
    except Exception as err:  # noqa: BLE001 - a figure or an export must never fail a sweep that ran
        first = str(err).splitlines()[0] if str(err) else ""
        return [f"plots and Optuna study: not written ({type(err).__name__}: {first})"]


def record_dataset_hashes(spec: SweepSpec) -> dict[str, str]:
    """On a cluster: the content hash of every dataset the sweep's trials read, in
    ``$DYNSWEEP_DATASET_HASHES`` for every node to check its copy against (the base config,
    and the base with each discrete value of each swept parameter)."""
    from trainables.common.dataset_hashes import ENV
    from trainables.registry import family_datasets

    configs = [dict(spec.base)] + [{**spec.base, p.name: v} for p in spec.params
                                   if p.kind in ("choice", "grid", "fixed") for v in p.args]
    hashes: dict[str, str] = {}
    for config in configs:
        try:
            hashes.update(family_datasets(spec.family, config))
        except ConfigError:  # a value valid only together with others: its datasets come with those
            continue
    os.environ[ENV] = json.dumps(hashes)
    return hashes


def quiet_ray() -> None:
    """Keep Ray Tune's own tables and warnings out of the terminal: dynsweep prints its own."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials keep the driver's folder: relative paths work
    os.environ["DYNSWEEP_DATASETS"] = str(Path(os.environ.get("DYNSWEEP_DATASETS", "datasets")).resolve())
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Tune snapshots the experiment every 10 s or more by default; a driver killed in between
    # loses what happened since. Every 2 s keeps that small; what is lost anyway is recovered
    # on resume from the trials' checkpoints and the tracker's journal.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # A sweep may optimise a metric that only the last report carries (a family's test metrics);
    # Tune would stop the whole sweep at the first report without it. The spec has already
    # checked that the family reports the metric at all.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # mlflow resets its logger when imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)  # the tracker reports failed writes
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class Progress(Callback):
    """A Tune callback showing the sweep's progress, and collecting the trials for the summary.

    On a terminal: one live status line, redrawn every 2 s. Otherwise (a batch job's log):
    the same facts as a plain line every ``every_s`` seconds (default 30,
    ``$DYNSWEEP_PROGRESS_EVERY_S``) and once at the end. ``quiet``: neither.
    """

    def __init__(self, spec: SweepSpec, start: float, quiet: bool, every_s: float | None = None,
                 tracker: Any = None, interrupts: Any = None) -> None:
        self.spec = spec
        self.start = start
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.every_s = every_s if every_s is not None else float(os.environ.get("DYNSWEEP_PROGRESS_EVERY_S", 30))
        self.tracker = tracker
        self.interrupts = interrupts
        self.trials: list[Any] = []
        self.temp: Path | None = None
        self.peak_temp = 0
        self._last = 0.0
        self._last_line = start
        self._done_at_start: int | None = None

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self.trials = trials
        if self.interrupts is not None:
            self.interrupts.forward()
        now = time.perf_counter()
        if now - self._last < 2.0:
            return
        self._last = now
        if self.temp is not None:
            from .runtime import dir_size

            self.peak_temp = max(self.peak_temp, dir_size(self.temp))
        if self.live:
            print(f"\r{self.line(trials, now)}   ", end="", file=sys.stderr, flush=True)
        elif not self.quiet and now - self._last_line >= self.every_s:
            self._last_line = now
            print(f"[{dt.datetime.now():%H:%M:%S}] progress: {self.line(trials, now)}", file=sys.stderr, flush=True)

    def line(self, trials: list[Any], now: float) -> str:
        """``12/288 trials done (1 failed), 2 running, 274 pending; best loss=0.0417; 55 s, eta 20 min``;
        the ETA extrapolates this session's rate of trials done (none before the first is done)."""
        states = Counter(t.status for t in trials)
        done = states.get("TERMINATED", 0) + states.get("ERROR", 0)
        if self._done_at_start is None:
            self._done_at_start = done
        total = max(self.spec.total_trials(), len(trials))
        elapsed = now - self.start
        rate_done = done - self._done_at_start
        eta = f"eta {_duration(elapsed / rate_done * max(total - done, 0))}" if rate_done > 0 else "eta -"
        best = best_value(self.spec, trials)
        text = (f"{done}/{total} trials done ({states.get('ERROR', 0)} failed), {states.get('RUNNING', 0)} running, "
                f"{max(total - done - states.get('RUNNING', 0), 0)} pending; best {self.spec.metric}={best:.4g}; "
                f"{_duration(elapsed)}, {eta}")
        note = self.tracker.status_note() if self.tracker is not None else ""
        return f"{text}; {note}" if note else text

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.trials = trials
        if self.live:
            print(file=sys.stderr)
        elif not self.quiet:
            print(f"[{dt.datetime.now():%H:%M:%S}] progress: {self.line(trials, time.perf_counter())}",
                  file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def best_value(spec: SweepSpec, trials: list[Any]) -> float:
    values = [t.last_result.get(spec.metric) for t in trials if t.last_result]
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return math.nan
    return min(values) if spec.mode == "min" else max(values)


SUMMARY_STATE = {"completed": "finished", "stopped_early": "stopped early", "failed": "errored",
                 "timeout": "timeout", "interrupted": "interrupted"}
"""Outcome (:mod:`search.outcome`) -> the word the summary and ``dynsweep status`` use."""


def _outcome_without_callback(spec: SweepSpec, t: Any, stopper: Any) -> str:
    """The outcome of a trial the tracker saw no end of (restored from an older sweep folder)."""
    last = t.last_result or {}
    if t.status == "ERROR":
        return "failed"
    if stopper is not None and t.trial_id in stopper.timed_out:
        return "timeout"
    if t.status != "TERMINATED" or not last or not last.get("done", False):
        return "interrupted"
    if spec.scheduler == "asha" and last.get(spec.time_attr, spec.max_t) < spec.max_t:
        return "stopped_early"
    return "completed"


def summarise(spec: SweepSpec, trials: list[Any], tracker: Any, stopper: Any, wall_s: float) -> dict[str, Any]:
    from .tracking import failure_of

    swept = [p.name for p in spec.params if p.kind != "fixed"]
    rows, states = [], Counter()
    failures: Counter[str] = Counter()
    trial_seconds = 0.0
    for t in trials:
        last = t.last_result or {}
        seconds = float(last.get("time_total_s", 0.0))
        trial_seconds += seconds
        outcome = tracker.outcomes.get(t.trial_id) or _outcome_without_callback(spec, t, stopper)
        state = SUMMARY_STATE[outcome]
        if outcome == "failed":
            failures[(tracker.failures.get(t.trial_id) or failure_of(t))[0]] += 1
        states[state] += 1
        rows.append({"trial": t.trial_id, "state": state,
                     spec.metric: last.get(spec.metric, math.nan) if outcome in RANKED else math.nan,
                     **{m: last.get(m, math.nan) for m in spec.show},
                     "seconds": round(seconds, 2), **{k: t.config.get(k) for k in swept}})
    sign = 1 if spec.mode == "min" else -1
    rows.sort(key=lambda r: (math.isnan(_num(r[spec.metric])), sign * _num(r[spec.metric])))
    return {"rows": rows, "trials": len(trials), "finished": states["finished"],
            "stopped_early": states["stopped early"], "errored": states["errored"], "timeout": states["timeout"],
            "interrupted": states["interrupted"],
            "failures": dict(failures), "trial_seconds": trial_seconds, "wall_seconds": wall_s,
            "best": rows[0][spec.metric] if rows else math.nan,
            "results": {t.trial_id: dict(t.last_result or {}) for t in trials},
            "configs": {t.trial_id: dict(t.config) for t in trials}}


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) else math.nan


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def print_summary(spec: SweepSpec, summary: dict[str, Any], uri: str, top: int = 10) -> None:
    rows = summary["rows"][:top]
    if rows:
        keys = list(rows[0])
        widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
        print("  ".join(k.ljust(widths[k]) for k in keys))
        for r in rows:
            print("  ".join(_fmt(r.get(k)).ljust(widths[k]) for k in keys))
    fails = ", ".join(f"{k} {v}" for k, v in sorted(summary["failures"].items())) or "none"
    print(f"\n{summary['trials']} trials: {summary['finished']} finished, {summary['stopped_early']} stopped early, "
          f"{summary['errored']} errored ({fails}), {summary['timeout']} timed out"
          f"{', %d interrupted' % summary['interrupted'] if summary['interrupted'] else ''}; "
          f"{summary['trial_seconds']:.1f} trial-seconds in {summary['wall_seconds']:.1f} s")
    if summary["interrupted"]:
        print(f"the sweep was interrupted; its state is kept in {spec.sweep_dir}/tune")
    if summary["failures"].get("disk-full"):
        print(f"{summary['failures']['disk-full']} trials failed because the disk was full: free some space under "
              f"{spec.sweep_dir}, then `dynsweep resume {spec.sweep_dir} --resume-errored` runs them again")
    if summary.get("ray_temp_peak_mb") is not None:
        print(f"Ray temp folder: peak {summary['ray_temp_peak_mb']:.1f} MB during the sweep, "
              f"{summary['ray_temp_after_mb']:.1f} MB left after it")
    print(f"results: {spec.sweep_dir}/summary.csv\nMLflow UI: dynsweep ui {spec.sweep_dir} --port 0 "
          f"(the runs best first, charts; or plain: mlflow ui --backend-store-uri '{uri}')")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return str(v)
