"""``dynsweep ls`` and ``dynsweep status``: what the sweeps in a runs folder are doing.

Both read the sweep folders only (``sweep.json``, the driver lock, Tune's last experiment
snapshot, error files): they start nothing and do not import Ray or MLflow. ``ls`` lists a
sweep whose files cannot be read as ``unreadable`` (with the reason) and goes on with the
others. ``--format json`` prints the same facts as JSON: ``ls`` a list of sweep objects,
``status`` one object.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from cliargs import STORAGE_HELP, SWEEP_HELP
from trainables.common.errors import DynsweepError

from .failures import classify_error_text
from .resume import resumable
from .sweep_folder import SweepFolder, TrialRecord, find_sweeps, resolve_sweep

UNFINISHED = ("PENDING", "RUNNING", "PAUSED")
FORMATS = ("text", "json")


def add_ls_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("storage", nargs="?", default="runs", help=STORAGE_HELP)
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text: a table (default); json: a list of sweep objects with the same facts")


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help=SWEEP_HELP)
    p.add_argument("--storage", default="runs", help=STORAGE_HELP)
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text: lines for a person (default); json: one object with the same facts")


def sweep_state(folder: SweepFolder, meta: dict[str, Any]) -> str:
    """running (pid) / died (the driver is gone mid-sweep) / interrupted / finished."""
    driver = folder.driver()
    if driver is not None:
        return f"running (pid {driver.get('pid', '?')})"
    state = meta.get("state", "?")
    return "died" if state == "running" else state


def trial_states(trials: list[TrialRecord], alive: bool) -> Counter[str]:
    names = {"TERMINATED": "finished", "ERROR": "errored"}
    return Counter(names.get(t.status, "running" if alive else "unfinished") for t in trials)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def best(trials: list[TrialRecord], metric: str, mode: str) -> tuple[float, str]:
    """The best value of ``metric`` over the trials' last results, and its trial id."""
    values = [(v, t.trial_id) for t in trials if (v := _number(t.last_result.get(metric))) is not None]
    if not values:
        return math.nan, ""
    return min(values) if mode == "min" else max(values)


def _counts(states: Counter[str]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials yet"


def _printable(text: str) -> str:
    """A name as one line of text: control characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _label(folder: SweepFolder, root: Path) -> str:
    """The sweep's name as ``ls`` shows it: its path under the runs folder (``a/b`` when nested)."""
    try:
        return folder.path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return folder.name


def _json_value(value: float) -> float | None:
    return value if math.isfinite(value) else None


def sweep_facts(folder: SweepFolder, name: str) -> dict[str, Any]:
    """What ``ls`` shows of one sweep, as plain values.

    Raises:
        DynsweepError: a file of the sweep cannot be read (the caller lists it as unreadable).
    """
    meta = folder.read_meta()
    trials = folder.trials()
    state = sweep_state(folder, meta)
    metric, mode = meta.get("metric", ""), meta.get("mode", "min")
    value, trial_id = best(trials, metric, mode)
    why = resumable(folder)
    short = why.replace(f"{folder.path}/", "").replace(str(folder.path), name)  # the folder is the row's
    can = "yes" if not why else "no" if state.startswith("running") else f"no: {short.split(';')[0][:60]}"
    if not why and state == "finished" and all(t.status == "TERMINATED" for t in trials):
        can = "nothing to resume"
    counts = trial_states(trials, state.startswith("running"))
    return {"name": name, "path": str(folder.path), "family": meta.get("family", "?"),
            "created": meta.get("created", "?"), "state": state, "trials": dict(sorted(counts.items())),
            "num_samples": meta.get("num_samples"), "metric": metric or None, "mode": mode,
            "best": _json_value(value), "best_trial": trial_id or None, "resumable": not why,
            "resumable_text": can, "why_not_resumable": why or None}


def run_ls(args: argparse.Namespace) -> int:
    root = Path(args.storage)
    sweeps = find_sweeps(root)
    facts: list[dict[str, Any]] = []
    for folder in sweeps:
        name = _label(folder, root)
        try:
            facts.append(sweep_facts(folder, name))
        except DynsweepError as err:
            facts.append({"name": name, "path": str(folder.path), "state": "unreadable", "error": str(err)})
    if args.format == "json":
        print(json.dumps(facts, indent=1))
        return 0
    if not facts:
        print(f"no sweeps in {root.resolve()}")
        return 0
    rows = []
    for f in facts:
        if f["state"] == "unreadable":
            rows.append({"name": _printable(f["name"]), "family": "?", "created": "?", "state": "unreadable",
                         "trials": "?", "best": "?", "resumable": "no"})
            continue
        best_value = f["best"] if f["best"] is not None else math.nan
        rows.append({"name": _printable(f["name"]), "family": _printable(f["family"]),
                     "created": _printable(f["created"]), "state": _printable(f["state"]),
                     "trials": _counts(Counter(f["trials"])),
                     "best": f"{_printable(f['metric'] or '?')}={best_value:.4g}",
                     "resumable": _printable(f["resumable_text"])})
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    print("  ".join(k.ljust(widths[k]) for k in widths).rstrip())
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in widths).rstrip())
    for f in facts:
        if f["state"] == "unreadable":
            print(f"{_printable(f['name'])}: unreadable: {_printable(f['error'])}")
    return 0


def status_facts(folder: SweepFolder) -> dict[str, Any]:
    """What ``status`` shows of one sweep, as plain values."""
    meta = folder.read_meta()
    trials = folder.trials()
    state = sweep_state(folder, meta)
    driver = folder.driver()
    metric, mode = meta.get("metric", ""), meta.get("mode", "min")
    value, trial_id = best(trials, metric, mode)
    errored = [t for t in trials if t.status == "ERROR"]
    errors = []
    for t in errored:
        failure, message = classify_error_text(t.error)
        errors.append({"trial": t.trial_id, "class": failure,
                       "message": message.splitlines()[0][:160] if message else ""})
    why = resumable(folder)
    unfinished = sum(t.status in UNFINISHED for t in trials)
    resume_with = None
    if not why and (unfinished or errored or state == "died"):
        hint = " --restart-errored" if errored and not unfinished else ""
        resume_with = f"dynsweep resume {folder.path}{hint}"
    return {"name": folder.name, "path": str(folder.path), "family": meta.get("family", "?"), "state": state,
            "driver": driver, "trials": dict(sorted(trial_states(trials, driver is not None).items())),
            "num_samples": meta.get("num_samples"),
            "trial_seconds": sum(_number(t.last_result.get("time_total_s")) or 0.0 for t in trials),
            "metric": metric or None, "mode": mode, "best": _json_value(value) if trial_id else None,
            "best_trial": trial_id or None, "errored": errors, "resumable": not why,
            "why_not_resumable": why or None, "resume_with": resume_with}


def run_status(args: argparse.Namespace) -> int:
    folder = resolve_sweep(args.sweep, args.storage)
    facts = status_facts(folder)
    if args.format == "json":
        print(json.dumps(facts, indent=1, default=str))
        return 0
    driver = facts["driver"]
    print(f"sweep {_printable(facts['name'])} ({_printable(facts['family'])}) in {folder.path}")
    print(f"state: {_printable(facts['state'])}; driver: "
          + (f"alive, pid {driver.get('pid')} on {driver.get('host')} since {driver.get('since')}"
             if driver is not None else "not running"))
    print(f"trials: {_counts(Counter(facts['trials']))} of {facts['num_samples'] if facts['num_samples'] is not None else '?'}")
    print(f"trial-seconds spent: {facts['trial_seconds']:.1f}")
    if facts["best_trial"]:
        best_value = facts["best"] if facts["best"] is not None else math.nan
        print(f"best: {_printable(facts['metric'] or '?')}={best_value:.4g} (trial {facts['best_trial']})")
    if facts["errored"]:
        print("errored trials:")
        for e in facts["errored"]:
            print(f"  {e['trial']}  [{e['class']}] {e['message']}")
    if facts["resume_with"]:
        print(f"resume with: {facts['resume_with']}")
    elif facts["why_not_resumable"] and driver is None:
        print(f"cannot be resumed: {facts['why_not_resumable']}")
    return 0
