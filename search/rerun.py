"""``dynsweep rerun RUN_ID``: train one tracked trial again, exactly (or changed with ``--set``).

The run is found in an MLflow store (``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the
store of the sweep ``--sweep`` names, else every sweep under ``--storage``) by its run id, a
unique prefix of it, or its trial id. Its family comes from the tag ``dynsweep.family``, its
config from the ``config.yaml`` artefact (the family's complete config), overridden by ``--set``
as in ``dynsweep train`` and validated before any work.

Before training: a warning when dynsweep's installed commit is not the run's
``mlflow.source.git.commit``; a refusal when a dataset the trial reads now has another content
hash than the one the run recorded (its MLflow dataset inputs); torch's intra-op threads set to
the run's ``torch_threads``, so a CPU re-run is bit for bit. The trial then runs in this process
without Ray, like ``dynsweep train`` (``LocalReporter`` into ``--run-dir``), and is tracked as a
new run of the same experiment, tagged ``dynsweep.rerun_of``; its final metrics are printed next
to the original's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cliargs import STORAGE_HELP, TRACKING_URI_HELP
from trainables.common.errors import ConfigError, DataError

from .overrides import apply_overrides
from .sweep_folder import find_sweeps, resolve_sweep
from .yaml_io import load_file

RERUN_OF = "dynsweep.rerun_of"
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_ID", help="the MLflow run id (or a unique prefix of it) or the trial id")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config value for the re-run (as in `dynsweep train`); repeatable")
    p.add_argument("--store", dest="sweep", default=None, help=argparse.SUPPRESS)  # the old name of --sweep
    add_lookup_arguments(p)
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where checkpoints, metrics and artefacts go (default runs/rerun/<run id[:8]>-<time>)")


def add_lookup_arguments(p: argparse.ArgumentParser) -> None:
    """``--sweep``, ``--storage``, ``--tracking-uri``: where :func:`find_run` looks for a run."""
    p.add_argument("--sweep", dest="sweep", default=None, metavar="SWEEP",
                   help="the sweep holding the run: its folder, or its name under --storage (default: every "
                        "sweep under --storage)")
    p.add_argument("--storage", default="runs", help=STORAGE_HELP)
    p.add_argument("--tracking-uri", default=None, help=TRACKING_URI_HELP)


@dataclass
class Found:
    """The original run and where it lives."""

    uri: str
    client: Any
    run: Any


# --- finding the run ---------------------------------------------------------------------------
def find_run(ident: str, tracking_uri: str | None = None, store: str | None = None,
             storage: str = "runs") -> Found:
    """The run ``ident`` names (run id, unique run-id prefix or trial id) in the store chosen as
    the module docstring says.

    Raises:
        ConfigError: no such run, more than one, or not a trial of a dynsweep family.
    """
    from mlflow.tracking import MlflowClient

    ident = ident.strip()
    if not _ID.match(ident):
        raise ConfigError(f"{ident!r}: not a run id, run-id prefix or trial id")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        stores = [uri]
    elif store is not None:
        folder = resolve_sweep(store, storage)
        meta = folder.read_meta()
        os.environ.setdefault("DYNSWEEP_DATASETS", meta.get("datasets", "datasets"))
        stores = [folder.tracking_uri(meta)]
    else:
        folders = [f for f in find_sweeps(Path(storage))]
        if not folders:
            raise ConfigError(f"{ident}: say which store holds the run (--sweep SWEEP, --tracking-uri URI or "
                              f"$MLFLOW_TRACKING_URI); there are no sweeps under {Path(storage).resolve()}")
        stores = [f.tracking_uri() for f in folders]
    missing = [u for u in stores if u.startswith("sqlite:///") and not Path(u.removeprefix("sqlite:///")).is_file()]
    if missing and len(missing) == len(stores):
        raise ConfigError(f"{ident}: no MLflow store at {missing[0]} (the sweep tracked nothing there); "
                          "give --tracking-uri for a tracking server")
    hits: list[tuple[str, Any, Any]] = []
    for candidate in (u for u in dict.fromkeys(stores) if u not in missing):
        client = MlflowClient(candidate)
        hits += [(candidate, client, r) for r in _matches(client, ident)]
    where = stores[0] if len(stores) == 1 else f"the {len(stores)} sweeps under {Path(storage).resolve()}"
    if not hits:
        raise ConfigError(f"{ident}: no run or trial with that id in {where}")
    if len(hits) > 1:
        names = ", ".join(f"{r.info.run_id[:12]} ({r.info.run_name})" for _, _, r in hits[:6])
        raise ConfigError(f"{ident}: {len(hits)} runs match in {where}: {names}; give more of the run id")
    uri, client, run = hits[0]
    tags = run.data.tags
    if tags.get("dynsweep.kind") == "sweep":
        raise ConfigError(f"{ident}: run {run.info.run_id} is the parent run of sweep {run.info.run_name!r}, "
                          "not a trial; give one of its child runs")
    if "dynsweep.family" not in tags:
        raise ConfigError(f"{ident}: run {run.info.run_id} in {uri} is not a dynsweep trial (no dynsweep.family tag)")
    return Found(uri, client, run)


def _matches(client: Any, ident: str) -> list[Any]:
    """Runs of the store whose id is ``ident``, starts with it, or whose trial id is ``ident``."""
    from mlflow.exceptions import MlflowException

    if re.fullmatch(r"[0-9a-f]{32}", ident):
        try:
            return [client.get_run(ident)]
        except MlflowException:
            return []
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    found = {r.info.run_id: r for r in client.search_runs(experiments, f"tags.trial_id = '{ident}'", max_results=50)}
    if re.fullmatch(r"[0-9a-f]+", ident):
        found.update({r.info.run_id: r for r in client.search_runs(
            experiments, f"attributes.run_id LIKE '{ident}%'", max_results=50)})
    return list(found.values())


# --- rebuilding the trial ------------------------------------------------------------------------
def recorded_config(found: Found) -> dict[str, Any]:
    """The run's ``config.yaml`` artefact (the family's complete config)."""
    from mlflow.exceptions import MlflowException

    run_id = found.run.info.run_id
    with tempfile.TemporaryDirectory(prefix="dynsweep-rerun-") as tmp, _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
        try:
            path = found.client.download_artifacts(run_id, "config.yaml", tmp)
        except (MlflowException, OSError) as err:
            raise ConfigError(f"run {run_id}: no config.yaml artefact to rebuild the trial from "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
        data = load_file(path, "config YAML")
    if not isinstance(data, dict):
        raise ConfigError(f"run {run_id}: its config.yaml is not a mapping")
    return data


def recorded_datasets(run: Any) -> dict[str, str]:
    """``{dataset name: content hash}`` from the run's dataset inputs (the full hash in the
    source's ``content_sha256``, else the digest, a prefix of it)."""
    out: dict[str, str] = {}
    for item in run.inputs.dataset_inputs if run.inputs is not None else []:
        ds = item.dataset
        try:
            source = json.loads(ds.source or "{}")
        except json.JSONDecodeError:
            source = {}
        full = source.get("content_sha256") if isinstance(source, dict) else None
        out[ds.name] = str(full or ds.digest)
    return out


def check_datasets(family: str, config: dict[str, Any], recorded: dict[str, str], run_id: str) -> dict[str, str]:
    """The content hashes of what the trial reads now, each checked against the recorded one.

    Raises:
        DataError: a dataset differs from the one the run read.
    """
    from trainables.common.dataset_hashes import ENV
    from trainables.registry import family_datasets

    with _env(ENV, None):  # a sweep launched earlier in this process may have left its own hashes there
        now = family_datasets(family, config)
    for name, digest in sorted(now.items()):
        then = recorded.get(name)
        if then is not None and not (digest == then or (len(then) < len(digest) and digest.startswith(then))):
            raise DataError(f"dataset {name} has changed since run {run_id[:8]} read it: content hash now "
                            f"{digest}, then {then}; restore that dataset, or point DYNSWEEP_DATASETS at the "
                            "folder the sweep used")
    return now


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Environment variable ``name`` = ``value`` (unset when None) for the duration."""
    old = os.environ.pop(name, None)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
        if old is not None:
            os.environ[name] = old


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads = ``n`` for the duration (unchanged when None)."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _threads(tags: dict[str, str]) -> int | None:
    try:
        return max(1, int(tags["torch_threads"]))
    except (KeyError, ValueError):
        return None


# --- the command ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from trainables.common.reporter import LocalReporter
    from trainables.registry import entry, family_config, family_run

    from .provenance import source_commit

    found = find_run(args.run, args.tracking_uri, args.sweep, args.storage)
    original = found.run
    run_id, tags = original.info.run_id, original.data.tags
    family = tags["dynsweep.family"]
    data = apply_overrides(recorded_config(found), args.overrides)
    cfg = family_config(family).from_dict(data, where=f"run {run_id[:8]} config.yaml")
    config = cfg.to_dict()

    commit, then = source_commit(), tags.get("mlflow.source.git.commit", "unknown")
    if commit != then:
        print(f"dynsweep: warning: this dynsweep is at commit {commit[:12]}, run {run_id[:8]} was made at "
              f"{then[:12]}: the code may compute something else", file=sys.stderr)
    recorded = recorded_datasets(original)
    hashes = check_datasets(family, config, recorded, run_id)
    if hashes:
        unrecorded = sorted(set(hashes) - set(recorded))
        print(f"datasets: {', '.join(sorted(set(hashes) & set(recorded))) or 'none'} as the run read them"
              + (f"; not read by the run, so not checked: {', '.join(unrecorded)}" if unrecorded else ""))
    threads = _threads(tags)

    run_dir = args.run_dir or Path(args.storage) / "rerun" / f"{run_id[:8]}-{time.strftime('%Y%m%d-%H%M%S')}"
    reporter = LocalReporter(run_dir)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"family": family, **config}, sort_keys=False))
    print(f"re-running {family} run {run_id[:8]} ({original.info.run_name}) -> {run_dir}"
          + (f" with {' '.join(args.overrides)}" if args.overrides else "")
          + (f"; {threads} torch thread{'s' * (threads > 1)} as the original" if threads else ""))
    started = int(time.time() * 1000)
    t0 = time.perf_counter()
    with torch_threads(threads), _env("DYNSWEEP_DATASET_HASHES", None):
        import torch

        used = torch.get_num_threads()
        family_run(family)(cfg, reporter)
    seconds = time.perf_counter() - t0
    print(f"done in {seconds:.1f} s; checkpoint {reporter.checkpoint_path}")

    command = f"dynsweep rerun {args.run}" + "".join(f" --set {o}" for o in args.overrides)
    new_id = track(found, family, config, reporter, hashes, used, started, seconds, command, args.overrides)
    final = final_metrics(reporter.history)
    print(f"new run {new_id} (rerun of {run_id}) in {found.uri}")
    print(compare(original.data.metrics, final, entry(family).clock_metrics, config))
    return 0


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of every metric MLflow gets (:func:`_kept`)."""
    return {key: float(value) for row in history for key, value in row.items() if _kept(value)}


def _kept(value: Any) -> bool:
    """A metric MLflow gets: a finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def create_linked_run(client: Any, experiment: str, name: str, started: int, tags: dict[str, str],
                      family: str, config: dict[str, Any]) -> str:
    """A new run in ``experiment`` with ``tags``, the params a trial of ``family`` with ``config``
    gets (derived ones included) and its ``config.yaml``; its id. (``dynsweep rerun`` and
    ``evaluate`` link it to the original run through the tags.)"""
    from mlflow.entities import Param

    from .tracking import params_and_tags

    flat, derived = params_and_tags(family, config)
    new_id = client.create_run(experiment, run_name=name[:250], start_time=started,
                               tags={k: str(v)[:5000] for k, v in {**tags, **derived}.items()}).info.run_id
    try:
        params = [Param(k, v[:6000]) for k, v in flat.items()]
        for i in range(0, len(params), 100):
            client.log_batch(new_id, params=params[i:i + 100])
        client.log_text(new_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
    except BaseException:
        client.set_terminated(new_id, "FAILED")
        raise
    return new_id


def track(found: Found, family: str, config: dict[str, Any], reporter: Any, hashes: dict[str, str],
          threads: int, started: int, seconds: float, command: str, overrides: list[str]) -> str:
    """The re-run as a new MLflow run in the original's experiment; returns its id."""
    from mlflow.entities import Dataset, DatasetInput, Metric, RunTag

    from .outcome import OUTCOME_TAG
    from .provenance import run_tags
    from .tracking import MAX_BATCH

    client, original = found.client, found.run
    orig_id, experiment = original.info.run_id, original.info.experiment_id
    link = f"#/experiments/{experiment}/runs/{orig_id}"
    tags = {RERUN_OF: orig_id, "dynsweep.kind": "rerun", "dynsweep.family": family,
            **run_tags(command),
            "device": _device(config), "torch_threads": str(threads), "hostname": socket.gethostname(),
            **reporter.tag_values, OUTCOME_TAG: "completed", "trial_seconds": f"{seconds:.3f}",
            "mlflow.note.content": f"Re-run of [{original.info.run_name}]({link})"
                                   + (f" with `{' '.join(overrides)}`" if overrides else "") + "."}
    if "trial_id" in original.data.tags:
        tags["dynsweep.rerun_of_trial"] = original.data.tags["trial_id"]
    if overrides:
        tags["dynsweep.rerun_overrides"] = " ".join(overrides)
    new_id = create_linked_run(client, experiment, f"rerun of {original.info.run_name}", started, tags, family,
                               config)
    try:
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, int(row["step"])) for row in reporter.history
                   for k, v in row.items() if _kept(v)]
        for i in range(0, len(metrics), MAX_BATCH):
            client.log_batch(new_id, metrics=metrics[i:i + MAX_BATCH])
        client.log_inputs(new_id, datasets=[
            DatasetInput(Dataset(name=name, digest=digest[:36], source_type="dynsweep",
                                 source=json.dumps({"name": name, "content_sha256": digest})))
            for name, digest in sorted(hashes.items())])
        checkpoint = Path(reporter.checkpoint_path)
        if checkpoint.is_dir():
            client.log_artifacts(new_id, str(checkpoint), artifact_path="checkpoint")
        artifacts = Path(reporter.run_dir) / "artifacts"
        if artifacts.is_dir():
            client.log_artifacts(new_id, str(artifacts), artifact_path="checkpoint/artifacts")
            if (artifacts / "model.pt").is_file():
                try:
                    from .model_export import log_model

                    with _quiet_mlflow():
                        log_model(client, new_id, artifacts)
                except Exception as err:  # noqa: BLE001 - a model that cannot be logged does not fail the re-run
                    reason = f"{type(err).__name__}: {err}".splitlines()[0][:500]
                    client.log_batch(new_id, tags=[RunTag("model_export_error", reason)])
    except BaseException:
        client.set_terminated(new_id, "FAILED")
        raise
    client.set_terminated(new_id, "FINISHED")
    return new_id


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """No progress bars, INFO lines or hints from MLflow while the model is logged."""
    import logging
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _device(config: dict[str, Any]) -> str:
    import torch

    device = str(config.get("device", "cpu"))
    if (device.startswith("cuda") or device == "auto") and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def compare(original: dict[str, float], rerun: dict[str, float], clock: tuple[str, ...] = (),
            config: dict[str, Any] | None = None, label: str = "rerun") -> str:
    """The final metrics side by side, and whether every one matches exactly. Clock metrics (wall
    time) are shown but not compared; a metric only one side has counts as a difference unless its
    value is the config's value of the same name (the sweep's tracker leaves such a metric out when
    the sweep set that value)."""
    from .tracking import _repeats_param

    keys = sorted(set(original) | set(rerun), key=lambda k: (k.startswith("test/"), k))
    width = max([len(k) for k in keys] + [6])
    lines = [f"{'metric':<{width}}  {'original':>24}  {label:>24}"]
    differ, compared = [], 0
    for key in keys:
        a, b = original.get(key), rerun.get(key)
        one = a if b is None else b
        if key in clock:
            mark = "(clock)"
        elif (a is None or b is None) and _repeats_param(key, one, config or {}):
            mark = "(= its param)"
        else:
            compared += 1
            same = a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b)))
            mark = "" if same else "differs"
            differ += [] if same else [key]
        lines.append(f"{key:<{width}}  {_fmt(a):>24}  {_fmt(b):>24}  {mark}".rstrip())
    if not differ:
        lines.append(f"identical: all {compared} final metrics equal the original's"
                     + (f" (clock metrics not compared: {', '.join(k for k in keys if k in clock)})"
                        if any(k in clock for k in keys) else ""))
    else:
        lines.append(f"not identical: {len(differ)} of {compared} final metrics differ from the original's "
                     f"({', '.join(differ[:5])}{', ...' if len(differ) > 5 else ''})")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else repr(float(value))
