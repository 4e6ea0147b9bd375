"""``dynsweep evaluate RUN_ID|FOLDER``: test a stored model again, on other data or settings.

The model comes from a tracked trial (its run id, a unique prefix, or its trial id, found as
``dynsweep rerun`` finds it: ``--tracking-uri``, ``--sweep``, or every sweep under ``--storage``;
its ``checkpoint`` artefact is downloaded) or from a folder: a ``dynsweep train`` / ``rerun`` run
folder (holding ``checkpoint/``) or a checkpoint folder itself. The config is the one saved in the
checkpoint, changed by ``--set`` (another solver or tolerance, other horizons, more evaluation
orbits) and validated before any work; ``--datasets`` adds data to test on, by the family's names
(``train``, ``val``, other test sets: see the family's ``evaluate`` hook).

The family's own final evaluation then runs on the stored model (its best-on-validation weights
when the checkpoint carries them: a trial that ASHA stopped saved its latest weights besides) (``evaluate`` hook of the
registry): the same metric names and artefacts as the run's last report, so with no change the
values equal the run's own, bit for bit on CPU (for a tracked run torch's threads are set to the
run's; give ``--threads`` for a folder trained with other than torch's default). The result goes to
``--run-dir`` (``metrics.json``, ``config.yaml``, ``artifacts/``; by default
``<run folder>/evaluations/<time>``, or ``<storage>/evaluate/<run id[:8]>-<time>`` for a tracked run)
and, for a tracked run, to MLflow as an evaluation run nested under the original trial (tags
``dynsweep.kind = evaluation``, ``dynsweep.evaluates = <run id>``): not a new training run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cliargs import positive_int
from trainables.common.errors import ConfigError

from .overrides import apply_overrides
from .rerun import add_lookup_arguments, create_linked_run

EVALUATES = "dynsweep.evaluates"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="RUN_ID|FOLDER",
                   help="a tracked trial (run id, unique prefix or trial id), a `dynsweep train` run folder, "
                        "or a checkpoint folder")
    p.add_argument("--datasets", nargs="+", default=[], metavar="NAME",
                   help="also test on these (the family's names: e.g. train, val, another test set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a config value for the evaluation (e.g. solver=rk4, horizons=[10,50]); repeatable")
    p.add_argument("--family", default=None, help="the family of a bare checkpoint folder (default: from its config)")
    add_lookup_arguments(p)
    p.add_argument("--run-dir", type=Path, default=None, help="where metrics and artefacts go (see the description)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch intra-op threads (default: the run's, so that CPU results are bit for bit)")


@dataclass
class Stored:
    """A stored model: its family, checkpoint folder, saved config and what the run reported."""

    family: str
    checkpoint: Path
    config: dict[str, Any]
    original: dict[str, float]
    threads: int | None
    home: Path
    """The run folder (evaluations go under it) or, for a tracked run, where they go by default."""
    found: Any = None
    """The tracked run (:class:`search.rerun.Found`), or None for a folder."""


# --- finding the model ---------------------------------------------------------------------------
def from_folder(folder: Path, family: str | None) -> Stored:
    """A run folder (``checkpoint/`` inside) or a checkpoint folder.

    Raises:
        ConfigError / CheckpointError: no checkpoint there, or its family cannot be told.
    """
    from trainables.common.checkpoint import CHECKPOINT_FILE, saved_config

    if (folder / CHECKPOINT_FILE).is_file():
        ckpt, home = folder, folder.parent
    elif (folder / "checkpoint" / CHECKPOINT_FILE).is_file():
        ckpt, home = folder / "checkpoint", folder
    else:
        raise ConfigError(f"{folder}: no {CHECKPOINT_FILE} here or in {folder / 'checkpoint'} (give a run folder of "
                          "`dynsweep train`, a checkpoint folder, or a tracked run's id)")
    try:
        config = saved_config(ckpt)
    except KeyError:
        raise ConfigError(f"{ckpt}: the checkpoint holds no config (made by an older dynsweep?)") from None
    family = family or _family_of(home, config)
    original: dict[str, float] = {}
    metrics = home / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            with contextlib.suppress(ValueError):
                original.update({k: v for k, v in json.loads(line).items() if _number(v) and k != "step"})
    return Stored(family, ckpt, config, original, None, home)


def _family_of(home: Path, config: dict[str, Any]) -> str:
    """The family named in the run folder's ``config.yaml``, else the only family whose config has
    exactly the checkpoint config's keys."""
    import dataclasses

    from trainables.registry import FAMILIES, family_config

    saved = home / "config.yaml"
    if saved.is_file():
        with contextlib.suppress(OSError, yaml.YAMLError):
            data = yaml.safe_load(saved.read_text())
            if isinstance(data, dict) and data.get("family") in FAMILIES:
                return str(data["family"])
    matches = [name for name in FAMILIES
               if {f.name for f in dataclasses.fields(family_config(name))} == set(config)]
    if len(matches) != 1:
        raise ConfigError(f"{home}: cannot tell the family of this checkpoint; give --family "
                          f"({', '.join(sorted(FAMILIES))})")
    return matches[0]


def from_run(ident: str, args: argparse.Namespace, tmp: Path) -> Stored:
    """A tracked trial: its ``checkpoint`` artefact downloaded into ``tmp``.

    Raises:
        ConfigError: no such run, or it kept no checkpoint artefact.
    """
    from mlflow.exceptions import MlflowException

    from .rerun import _env, _threads, find_run

    found = find_run(ident, args.tracking_uri, args.sweep, args.storage)
    run = found.run
    run_id = run.info.run_id
    with _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"):
        try:
            ckpt = Path(found.client.download_artifacts(run_id, "checkpoint", str(tmp)))
        except (MlflowException, OSError) as err:
            policy = run.data.tags.get("dynsweep.artifacts")
            why = (f"its sweep kept checkpoints off the tracking store (tracking.artifacts: {policy}); evaluate its "
                   "checkpoint folder on disk (the sweep folder's tune/ trial folders)") if policy else \
                (str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise ConfigError(f"run {run_id}: no checkpoint artefact to evaluate ({why})") from None
    stored = from_folder(ckpt, run.data.tags["dynsweep.family"])
    stored.original, stored.threads, stored.found = dict(run.data.metrics), _threads(run.data.tags), found
    stored.home = Path(args.storage) / "evaluate"
    return stored


# --- the command ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from trainables.registry import entry, family_config, family_evaluate

    from .rerun import compare, torch_threads

    with tempfile.TemporaryDirectory(prefix="dynsweep-evaluate-") as tmp:
        target = Path(args.target)
        stored = from_folder(target, args.family) if target.exists() else from_run(args.target, args, Path(tmp))
        hook = family_evaluate(stored.family)
        data = apply_overrides(stored.config, args.overrides)
        config = family_config(stored.family).from_dict(data, where=f"{stored.checkpoint} config").to_dict()
        if stored.found is not None:
            from .rerun import check_datasets, recorded_datasets

            check_datasets(stored.family, config, recorded_datasets(stored.found.run), stored.found.run.info.run_id)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = stored.found.run.info.run_id[:8] + "-" if stored.found is not None else ""
        run_dir = args.run_dir or stored.home / ("evaluations" if stored.found is None else "") / f"{label}{stamp}"
        artifacts = run_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"family": stored.family, **config}, sort_keys=False))
        threads = args.threads or stored.threads
        print(f"evaluating {stored.family} model {stored.checkpoint}"
              + (f" (run {stored.found.run.info.run_id[:8]})" if stored.found else "")
              + (f" with {' '.join(args.overrides)}" if args.overrides else "")
              + (f" on + {' '.join(args.datasets)}" if args.datasets else "") + f" -> {run_dir}", flush=True)
        started, t0 = int(time.time() * 1000), time.perf_counter()
        with torch_threads(threads):
            metrics = {k: float(v) for k, v in hook(stored.checkpoint, config, list(args.datasets), artifacts).items()}
        seconds = time.perf_counter() - t0
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True, default=str))
        print(f"done in {seconds:.1f} s")
        if stored.found is not None:
            new_id = track(stored, config, metrics, artifacts, args, started, seconds)
            print(f"evaluation run {new_id} (evaluates {stored.found.run.info.run_id}) in {stored.found.uri}")
        both = sorted(k for k in metrics if k in stored.original)
        if both:
            print(compare({k: stored.original[k] for k in both}, {k: metrics[k] for k in both},
                          entry(stored.family).clock_metrics, config, label="evaluated"))
        new = sorted(k for k in metrics if k not in stored.original)
        if new:
            width = max(len(k) for k in new)
            print("\n".join([f"{'new metric':<{width}}  {'evaluated':>24}",
                             *(f"{k:<{width}}  {metrics[k]!r:>24}" for k in new)]))
    return 0


def track(stored: Stored, config: dict[str, Any], metrics: dict[str, float], artifacts: Path,
          args: argparse.Namespace, started: int, seconds: float) -> str:
    """The evaluation as an MLflow run nested under the original trial; returns its id."""
    from mlflow.entities import Metric, RunTag

    from .outcome import OUTCOME_TAG
    from .provenance import run_tags
    from .tracking import MAX_BATCH

    client, original = stored.found.client, stored.found.run
    orig_id, experiment = original.info.run_id, original.info.experiment_id
    command = "dynsweep evaluate " + " ".join([args.target, *(f"--set {o}" for o in args.overrides),
                                               *(["--datasets", *args.datasets] if args.datasets else [])])
    what = (f" with `{' '.join(args.overrides)}`" if args.overrides else "") + \
           (f" on {', '.join(args.datasets)}" if args.datasets else "")
    tags = {"mlflow.parentRunId": orig_id, EVALUATES: orig_id, "dynsweep.kind": "evaluation",
            "dynsweep.family": stored.family, **run_tags(command), "hostname": socket.gethostname(),
            "evaluation_seconds": f"{seconds:.3f}",
            "mlflow.note.content": f"Evaluation of the stored model of "
                                   f"[{original.info.run_name}](#/experiments/{experiment}/runs/{orig_id}){what}."}
    if args.datasets:
        tags["dynsweep.evaluate_datasets"] = " ".join(args.datasets)
    if args.overrides:
        tags["dynsweep.evaluate_overrides"] = " ".join(args.overrides)
    new_id = create_linked_run(client, experiment, f"evaluation of {original.info.run_name}", started, tags,
                               stored.family, config)
    try:
        now, step = int(time.time() * 1000), int(original.data.metrics.get("step", 0) or 0)
        rows = [Metric(k, v, now, step) for k, v in metrics.items() if math.isfinite(v)]
        for i in range(0, len(rows), MAX_BATCH):
            client.log_batch(new_id, metrics=rows[i:i + MAX_BATCH])
        if any(artifacts.iterdir()):
            client.log_artifacts(new_id, str(artifacts), artifact_path="artifacts")
        client.log_batch(new_id, tags=[RunTag(OUTCOME_TAG, "completed")])
    except BaseException:
        client.set_terminated(new_id, "FAILED")
        raise
    client.set_terminated(new_id, "FINISHED")
    return new_id


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
