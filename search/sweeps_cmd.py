"""``dynsweep ls`` and ``dynsweep status``: what the sweeps in a runs folder are doing.

Both read the sweep folders only (``sweep.json``, the driver lock, Tune's last experiment
snapshot, error files): they start nothing and do not import Ray or MLflow.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path
from typing import Any

from .failures import classify_error_text
from .resume import resumable
from .sweep_folder import SweepFolder, TrialRecord, find_sweeps, resolve_sweep

UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


def add_ls_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("storage", nargs="?", default="runs", help="runs folder (default: runs)")


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sweep", help="the sweep's folder, or its name under --storage")
    p.add_argument("--storage", default="runs", help="runs folder holding the sweep (default: runs)")


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


def best(trials: list[TrialRecord], metric: str, mode: str) -> tuple[float, str]:
    """The best value of ``metric`` over the trials' last results, and its trial id."""
    values = [(float(t.last_result[metric]), t.trial_id) for t in trials
              if isinstance(t.last_result.get(metric), (int, float)) and math.isfinite(t.last_result[metric])]
    if not values:
        return math.nan, ""
    return min(values) if mode == "min" else max(values)


def _counts(states: Counter[str]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "no trials yet"


def run_ls(args: argparse.Namespace) -> int:
    root = Path(args.storage)
    sweeps = find_sweeps(root)
    if not sweeps:
        print(f"no sweeps in {root.resolve()}")
        return 0
    rows = []
    for folder in sweeps:
        meta = folder.read_meta()
        trials = folder.trials()
        state = sweep_state(folder, meta)
        value, _ = best(trials, meta.get("metric", ""), meta.get("mode", "min"))
        why = resumable(folder)
        can = "yes" if not why else "no" if state.startswith("running") else f"no: {why.split(';')[0][:60]}"
        if not why and state == "finished" and all(t.status == "TERMINATED" for t in trials):
            can = "nothing to resume"
        rows.append({"name": folder.name, "family": meta.get("family", "?"), "created": meta.get("created", "?"),
                     "state": state, "trials": _counts(trial_states(trials, state.startswith("running"))),
                     "best": f"{meta.get('metric', '?')}={value:.4g}", "resumable": can})
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]}
    print("  ".join(k.ljust(widths[k]) for k in widths))
    for r in rows:
        print("  ".join(r[k].ljust(widths[k]) for k in widths))
    return 0


def run_status(args: argparse.Namespace) -> int:
    folder = resolve_sweep(args.sweep, args.storage)
    meta = folder.read_meta()
    trials = folder.trials()
    state = sweep_state(folder, meta)
    driver = folder.driver()
    print(f"sweep {folder.name} ({meta.get('family', '?')}) in {folder.path}")
    print(f"state: {state}; driver: " + (f"alive, pid {driver.get('pid')} on {driver.get('host')} since "
                                          f"{driver.get('since')}" if driver is not None else "not running"))
    print(f"trials: {_counts(trial_states(trials, driver is not None))} of {meta.get('num_samples', '?')}")
    seconds = sum(float(t.last_result.get("time_total_s", 0.0) or 0.0) for t in trials)
    print(f"trial-seconds spent: {seconds:.1f}")
    value, trial_id = best(trials, meta.get("metric", ""), meta.get("mode", "min"))
    if trial_id:
        print(f"best: {meta.get('metric')}={value:.4g} (trial {trial_id})")
    errored = [t for t in trials if t.status == "ERROR"]
    if errored:
        print("errored trials:")
        for t in errored:
            failure, message = classify_error_text(t.error)
            print(f"  {t.trial_id}  [{failure}] {message.splitlines()[0][:160] if message else ''}")
    why = resumable(folder)
    unfinished = sum(t.status in UNFINISHED for t in trials)
    if not why and (unfinished or errored or state == "died"):
        hint = " --restart-errored" if errored and not unfinished else ""
        print(f"resume with: dynsweep resume {folder.path}{hint}")
    elif why and driver is None:
        print(f"cannot be resumed: {why}")
    return 0
