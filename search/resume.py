"""``dynsweep resume`` and ``dynsweep extend``: continue a sweep that died, was interrupted, or
that should get more trials.

A sweep is resumed from its folder: the recorded ``spec.yaml`` (not the YAML it was launched
from), Tune's experiment state, the MLflow run map and the tracker's journal. Only settings
that cannot change what a trial computes may change on resume (:data:`SAFE_KEYS`); anything
else is refused before Ray starts, as are a sweep from another dynsweep version, a
``spec.yaml`` edited since launch, and a sweep whose driver is still alive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from cliargs import (
    STORAGE_HELP,
    SWEEP_HELP,
    non_negative_int,
    positive_int,
)
from trainables.common.errors import ConfigError

from .overrides import apply_overrides
from .spec import check_resources, load_spec, validate
from .sweep_folder import META, SPEC, SweepFolder, resolve_sweep, sha256_file
from .version import package_version

SAFE_KEYS = ("resources.cpu", "resources.gpu", "retries", "max_concurrent", "trial_time_limit_s", "tracking.uri")
"""What ``resume --set`` may change: where and how trials run, never what they compute."""


def add_arguments(p: argparse.ArgumentParser, extend: bool = False) -> None:
    p.add_argument("sweep", help=SWEEP_HELP)
    p.add_argument("--storage", default="runs", help=STORAGE_HELP)
    if extend:
        p.add_argument("--num-samples", type=positive_int, required=True,
                       help="the sweep's new total number of trials")
    else:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--restart-errored", action="store_true", help="run errored trials again from scratch")
        group.add_argument("--resume-errored", action="store_true",
                           help="run errored trials again from their last checkpoint")
        p.add_argument("--retries", type=non_negative_int, default=None, help="retries per trial from now on")
        p.add_argument("--spec", type=Path, default=None,
                       help="the sweep's YAML: must equal the recorded spec except in the settings a resume may change")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"change a setting that is safe to change: {', '.join(SAFE_KEYS)}")
    p.add_argument("--tracking-uri", default=None,
                   help="the sweep's MLflow store reached at another address (default: the store it recorded "
                        "at launch; another store is refused)")
    p.add_argument("--force-versions", action="store_true",
                   help="resume although the sweep was made with another Ray or Optuna version (major.minor)")
    from .launch_args import add_output_arguments, add_ray_arguments

    add_ray_arguments(p)
    add_output_arguments(p)


def flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b`` keys (lists are values)."""
    if not isinstance(data, dict):
        return {prefix[:-1]: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flat(value, f"{prefix}{key}."))
    return out


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = flat(old), flat(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def _safe(key: str) -> bool:
    return any(key == s or key.startswith(s + ".") for s in SAFE_KEYS)


def check_identity(folder: SweepFolder, meta: dict[str, Any]) -> None:
    """Refuse a sweep made by another dynsweep version or whose spec.yaml was edited."""
    made_by, this = meta.get("dynsweep_version"), package_version()
    if made_by != this:
        raise ConfigError(f"{folder.path}/sweep.json: the sweep was made by dynsweep {made_by}; this is dynsweep "
                          f"{this}. Tune's saved state and the trainables may differ between versions: resume it "
                          f"with dynsweep {made_by}, or launch it again")
    if not folder.spec_path.exists() or sha256_file(folder.spec_path) != meta.get("spec_sha256"):
        raise ConfigError(f"{folder.spec_path}: the recorded spec was changed (or removed) after the sweep was "
                          "launched, so the trials already run would not match it; restore it, or launch a new "
                          "sweep from it")


STRICT_VERSIONS = ("ray", "optuna")
"""Packages whose major.minor must match on resume: Tune's experiment state and the pickled
searcher (Optuna's sampler and study) may not load in another version."""


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def check_versions(folder: SweepFolder, meta: dict[str, Any], force: bool = False) -> list[str]:
    """Compare the versions ``sweep.json`` records (``versions``: package -> version, written by
    ``dynsweep launch``) with the running ones. Returns warning lines for differences that do not
    stop a resume; a sweep recorded before versions were (no ``versions``) is not checked.

    Raises:
        ConfigError: Ray's or Optuna's major.minor differs, unless ``force``.
    """
    recorded = meta.get("versions")
    if not recorded:
        return []
    from .provenance import versions

    running = versions()
    warnings = []
    for name, then in sorted(recorded.items()):
        now = running.get(name)
        if now is None or now == then:
            continue
        if name in STRICT_VERSIONS and _major_minor(now) != _major_minor(then) and not force:
            raise ConfigError(f"{folder.path / META}: the sweep was made with {name} {then}; this is {name} {now}. "
                              f"Tune's saved experiment and the searcher's state may not load in another "
                              f"{name} version: resume it with {name} {then}, or pass --force-versions to try")
        warnings.append(f"{name} {then} -> {now}")
    return warnings


def resumable(folder: SweepFolder) -> str:
    """Why the sweep cannot be resumed, or '' if it can."""
    try:
        meta = folder.read_meta()
        check_identity(folder, meta)
        check_versions(folder, meta)
    except ConfigError as err:
        return str(err)
    if folder.driver() is not None:
        return "its driver is running"
    if folder.experiment_state() is None:
        return "Tune saved no state (the driver died in its first seconds): launch it again"
    return ""


def prepare(args: argparse.Namespace, overrides: list[str],
            num_samples: int | None = None) -> tuple[Any, SweepFolder, str, bool]:
    """``(spec, folder, tracking URI, resources_changed)`` for a resume; the changed spec is
    recorded only after every check passed."""
    folder = resolve_sweep(args.sweep, args.storage)
    meta = folder.read_meta()
    check_identity(folder, meta)
    changed_versions = check_versions(folder, meta, getattr(args, "force_versions", False))
    holder = folder.driver()
    if holder is not None:
        raise ConfigError(f"{folder.path}: a driver is running this sweep already (pid {holder.get('pid', '?')} on "
                          f"{holder.get('host', '?')} since {holder.get('since', '?')}); wait for it, or stop it first")
    if folder.experiment_state() is None:
        raise ConfigError(f"{folder.path}: nothing to resume: Tune saved no state (the driver died within its "
                          f"first seconds); remove the folder and launch the sweep again")
    repaired = folder.repair_experiment_state()  # cut short by a kill or a full disk: the last whole copy
    folder.trials()  # Tune's experiment state must be readable
    runs = folder.run_map()
    warnings = _check_journal(folder) + ([repaired] if repaired else [])
    recorded = read_spec(folder)
    wanted = recorded
    if getattr(args, "spec", None) is not None:
        wanted = load_spec(args.spec).raw
        wanted["storage"] = recorded.get("storage", "runs")
    wanted = apply_overrides(wanted, overrides)
    if num_samples is not None:
        wanted.setdefault("search", {})["num_samples"] = num_samples
    changes = changed_keys(recorded, wanted)
    refused = [k for k in changes if not _safe(k) and not (num_samples is not None and k == "search.num_samples")]
    if refused:
        source = args.spec if getattr(args, "spec", None) is not None else "--set"
        raise ConfigError(f"{source}: {', '.join(refused)} cannot change when a sweep is resumed (it would change "
                          f"what its trials compute); only {', '.join(SAFE_KEYS)} can. Launch a new sweep "
                          f"(--set name=...) to change the rest")
    spec = validate({**wanted, "storage": str(folder.path.parent)}, str(folder.spec_path))
    if spec.name != folder.name:
        raise ConfigError(f"{folder.spec_path}: name {spec.name!r} does not match the folder {folder.name!r}")
    uri = _tracking_uri(args, spec, folder, runs)
    if not args.address:
        check_resources(spec, args.num_cpus if args.num_cpus is not None else float(os.cpu_count() or 1),
                        args.num_gpus if args.num_gpus is not None else _gpus())
    if changed_versions:
        warnings.append(f"{folder.path / META}: versions changed since launch: {', '.join(changed_versions)}")
    for line in warnings:  # only once every check passed: a refusal stays one line
        print(f"dynsweep: warning: {line}", file=sys.stderr)
    if changes:
        _record(folder, wanted, changes)
        folder.write_meta(num_samples=spec.total_trials())
    os.environ.setdefault("DYNSWEEP_DATASETS", meta.get("datasets", "datasets"))
    return spec, folder, uri, any(k.startswith("resources.") for k in changes)


def read_spec(folder: SweepFolder) -> dict[str, Any]:
    """The recorded ``spec.yaml`` as a mapping (its hash was checked by :func:`check_identity`)."""
    from .yaml_io import load_file

    try:
        recorded = load_file(folder.spec_path, "recorded spec")
    except ConfigError as err:
        raise ConfigError(f"the recorded spec cannot be read: {err}") from None
    if not isinstance(recorded, dict):
        raise ConfigError(f"{folder.spec_path}: the recorded spec is not a mapping")
    return recorded


def _check_journal(folder: SweepFolder) -> list[str]:
    """Read the tracking journal once: a line damaged in its middle (not the torn last line a kill
    leaves) is skipped, since the events after it still count; returns the warning to print."""
    from .journal import Journal

    journal = Journal(folder.path)
    journal.read()
    torn = journal.torn_lines()
    if not torn:
        return []
    shown = ", ".join(str(n) for n in torn[:5]) + (", ..." if len(torn) > 5 else "")
    return [f"{journal.path}: {len(torn)} unreadable line(s) skipped (line {shown}); the events on them are "
            "not replayed into MLflow"]


def _gpus() -> float:
    from .launch import _machine_gpus

    return float(_machine_gpus())


def _record(folder: SweepFolder, wanted: dict[str, Any], changes: list[str]) -> None:
    """Write the changed spec (the old one kept as spec.<n>.yaml) and its hash."""
    n = len(list(folder.path.glob("spec.*.yaml"))) + 1
    os.replace(folder.spec_path, folder.path / f"spec.{n}.yaml")
    (folder.path / SPEC).write_text(yaml.safe_dump(wanted, sort_keys=False))
    meta = folder.read_meta()
    history = meta.get("changes", []) + [{"spec": f"spec.{n}.yaml", "keys": changes}]
    folder.write_meta(spec_sha256=sha256_file(folder.spec_path), changes=history)


def _tracking_uri(args: argparse.Namespace, spec: Any, folder: SweepFolder, runs: dict[str, str]) -> str:
    uri = args.tracking_uri or spec.tracking_uri or folder.tracking_uri()
    check_sqlite_store(uri, runs)
    if uri != folder.tracking_uri():
        check_store(uri, folder)
    return uri


def check_sqlite_store(uri: str, runs: dict[str, str]) -> None:
    """Before anything runs: a ``sqlite:///`` store must be an MLflow store (checked read-only, see
    :func:`analysis.source.store_problem`); a missing file is fine only while the sweep has no
    MLflow runs yet (the driver then creates the store)."""
    from analysis.source import sqlite_file, store_problem

    path = sqlite_file(uri)
    if path is None:
        return
    why = store_problem(path)
    if why == "no such file" and not runs:
        return
    if why:
        raise ConfigError(f"{path}: not an MLflow store ({why}); the sweep's runs are tracked there, so it cannot "
                          "be resumed until the store is restored (or launch the sweep again)")


def check_store(uri: str, folder: SweepFolder) -> None:
    """A changed tracking URI must reach the store that holds this sweep's runs."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    parent = folder.run_map().get("__sweep__")
    if parent is None:
        return
    try:
        MlflowClient(uri).get_run(parent)
    except MlflowException as err:
        raise ConfigError(f"tracking URI {uri}: this store does not hold the sweep's parent run {parent} "
                          f"({str(err).splitlines()[0]}); a resume can only reach the same store at another URI") from None


def launch_or_resume(args: argparse.Namespace) -> int:
    """``dynsweep launch``; with ``--resume-existing``, a folder that holds the sweep is resumed
    instead of refused, and one whose driver died before Tune saved anything is set aside."""
    from .launch import run_launch

    if getattr(args, "resume_existing", False):
        overrides = list(args.overrides) + ([f"storage={args.storage}"] if args.storage else [])
        folder = SweepFolder(load_spec(args.spec, overrides).sweep_dir)
        if folder.is_sweep():
            if folder.experiment_state() is not None or folder.driver() is not None:
                return _resume_existing(args, folder, overrides)
            _set_aside(folder)  # its driver died before Tune saved anything: nothing to resume
    return run_launch(args)


def _resume_existing(args: argparse.Namespace, folder: SweepFolder, overrides: list[str]) -> int:
    """``launch --resume-existing`` on a folder that holds the sweep: ``dynsweep resume`` of it,
    with the spec checked against the recorded one (only the settings a resume may change can
    differ) and errored trials resumed from their last checkpoint (a preemption kills trials
    with their nodes)."""
    print(f"dynsweep: {folder.path} holds this sweep already: resuming it (--resume-existing)",
          file=sys.stderr, flush=True)
    again = argparse.Namespace(**vars(args))
    again.sweep, again.storage, again.overrides = str(folder.path), str(folder.path.parent), overrides
    again.restart_errored, again.resume_errored, again.retries, again.force_versions = False, True, None, False
    return run_resume(again)


def _set_aside(folder: SweepFolder) -> None:
    """Move a sweep folder that holds no Tune state to ``<name>.aborted-<time>`` (kept, not
    deleted), so that the sweep can be launched afresh under its name."""
    aside = folder.path.with_name(f"{folder.name}.aborted-{dt.datetime.now():%Y%m%d-%H%M%S}")
    os.replace(folder.path, aside)
    print(f"dynsweep: {folder.path} holds no saved sweep state (its driver died before Tune saved any): "
          f"moved to {aside}; launching the sweep afresh (--resume-existing)", file=sys.stderr, flush=True)


def run_resume(args: argparse.Namespace) -> int:
    from .launch_args import apply_cluster_arguments

    apply_cluster_arguments(args)
    overrides = list(args.overrides) + ([f"retries={args.retries}"] if args.retries is not None else [])
    spec, _, uri, resources_changed = prepare(args, overrides)
    from .launch import Resume, exit_status, launch  # Ray: only once every check passed

    errored = "restart" if args.restart_errored else "resume" if args.resume_errored else "skip"
    summary = launch(spec, uri, args.num_cpus, args.num_gpus, args.address, quiet=args.quiet, verbose=args.verbose,
                     progress_every=args.progress_every,
                     resume=Resume(errored=errored, tracking_uri=uri, resources_changed=resources_changed))
    return exit_status(summary)


def run_extend(args: argparse.Namespace) -> int:
    from .launch_args import apply_cluster_arguments

    apply_cluster_arguments(args)
    folder = resolve_sweep(args.sweep, args.storage)
    check_identity(folder, folder.read_meta())
    recorded = read_spec(folder)
    search = recorded.get("search") or {}
    if not isinstance(search, dict):
        raise ConfigError(f"{args.sweep}: the recorded spec's `search` is not a mapping")
    if search.get("algorithm", "optuna") != "optuna":
        raise ConfigError(f"{args.sweep}: extend needs an Optuna sweep (its searcher keeps a history to continue "
                          f"from); search.algorithm is {search.get('algorithm')!r}. Launch a new sweep for more "
                          "random or grid trials")
    before = int(search.get("num_samples", 10))
    if args.num_samples <= before:
        raise ConfigError(f"--num-samples: {args.num_samples} must be larger than the sweep's {before} trials")
    spec, _, uri, resources_changed = prepare(args, list(args.overrides), num_samples=args.num_samples)
    from .launch import Resume, exit_status, launch  # Ray: only once every check passed

    summary = launch(spec, uri, args.num_cpus, args.num_gpus, args.address, quiet=args.quiet, verbose=args.verbose,
                     progress_every=args.progress_every,
                     resume=Resume(errored="skip", tracking_uri=uri, resources_changed=resources_changed))
    return exit_status(summary)
