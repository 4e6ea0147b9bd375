"""The Tune adapter: a family's ``run(config, reporter)`` as a Tune function trainable.

Inside each trial: numeric threads = the trial's CPU share; trials without a GPU share do not
see the machine's GPUs (``CUDA_VISIBLE_DEVICES=""``; Ray leaves it unset for them); the device
is CUDA when the trial holds a GPU share. Reports become ``tune.report`` with a
``tune.Checkpoint``; the family's artefacts travel inside the checkpoint (``artifacts/``), so
the driver can log them to MLflow wherever the trial ran. Failures are classified
(``config``, ``data``, ``diverged``, ``solver``, ``out-of-memory``, ``error``) into the
exception message as ``[class]``; a deterministic failure (config, data) is remembered in the
trial folder and a retry of that trial fails at once instead of repeating the work.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ray import tune

from trainables.common.errors import ConfigError, DataError, TrialFailure
from trainables.registry import family_config, family_datasets, family_run

from .failures import disk_full
from .runtime import cap_threads
from .spec import Param
from .trial_output import trial_output

DETERMINISTIC = ("config", "data")
TAG_PREFIX = "tag/"
DATASET_TAG = "dataset:"
"""Tags named ``dataset:<name>`` carry a dataset's content hash; the driver logs them as dataset inputs."""
"""A family's ``reporter.tags`` travel to the driver as string values under this prefix in the next report."""
MARKER = "deterministic_failure.txt"


class TrialError(RuntimeError):
    """A trial's failure, with its class in front of the message: ``[diverged] ...``."""

    def __init__(self, failure_class: str, message: str) -> None:
        self.failure_class = failure_class
        super().__init__(f"[{failure_class}] {message}")


def classify(err: BaseException) -> str:
    """The failure class of an exception raised inside a trial."""
    if isinstance(err, TrialFailure):
        return err.failure_class
    if isinstance(err, ConfigError):
        return "config"
    if isinstance(err, DataError):
        return "data"
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return "out-of-memory"
    if disk_full(err) is not None:
        return "disk-full"
    return "error"


class TuneReporter:
    """Implements ``trainables.common.reporter.Reporter`` over ``tune.report``."""

    def __init__(self) -> None:
        self._artifacts = Path(tempfile.mkdtemp(prefix="dynsweep-artifacts-"))
        self._restore: tempfile.TemporaryDirectory[str] | None = None
        self._tags: dict[str, str] = {}

    def tags(self, tags: dict[str, str]) -> None:
        self._tags.update({k: str(v) for k, v in tags.items()})

    def restore_dir(self) -> str | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        self._restore = tempfile.TemporaryDirectory(prefix="dynsweep-restore-")
        return checkpoint.to_directory(self._restore.name)

    def artifact_dir(self) -> Path:
        return self._artifacts

    def report(self, step: int, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        row: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        row.update({TAG_PREFIX + k: v for k, v in self._tags.items()})
        self._tags = {}
        row["step"] = step
        if checkpoint_dir is None:
            tune.report(row)
            return
        arts = list(self._artifacts.iterdir())
        if arts:
            target = Path(checkpoint_dir) / "artifacts"
            target.mkdir(exist_ok=True)
            for a in arts:
                shutil.copy2(a, target / a.name)
        tune.report(row, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))

    def close(self) -> None:
        shutil.rmtree(self._artifacts, ignore_errors=True)
        if self._restore is not None:
            self._restore.cleanup()


def use_scratch(trial_dir: Path) -> Path:
    """Point this process's temporary files (the reporter's artefacts, checkpoints being
    written, the family's own) at ``<trial dir>/tmp``: removed when the trial ends, and inside the
    sweep folder, not in /tmp, when a crash or a killed node leaves them behind."""
    scratch = trial_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None  # tempfile caches the folder it chose
    return scratch


def trial_folder(fallback: Path) -> Path:
    """The trial's folder in the sweep's storage (``<sweep>/tune/<trial>``: what the driver logs to
    MLflow and keeps after the sweep), when the storage is a local or shared filesystem; else
    ``fallback`` (Tune's working folder of the trial, synced to storage by Tune).

    ``get_trial_dir`` is a folder under Ray's session folder (removed when the sweep ends, and not
    synced at all when an actor is reused), so files that must outlive the trial go here.
    """
    try:
        from ray.train._internal.session import get_storage  # developer API (pinned Ray minor)

        storage = get_storage()
        if type(storage.storage_filesystem).__name__ == "LocalFileSystem":
            return Path(storage.trial_fs_path)
    except Exception:  # noqa: BLE001 - another storage or Ray layout: Tune's own folder
        pass
    return fallback


def resolve_config(family: str, base: Mapping[str, Any], sampled: Mapping[str, Any],
                   conditional: Sequence[Param] = (), gpu: float = 0.0) -> dict[str, Any]:
    """The full config a trial runs: the family's defaults, overlaid by ``base``, overlaid by the
    ``sampled`` values whose condition holds (a conditional value a searcher sampled although its
    condition does not hold is dropped); ``device`` follows the trial's GPU share.

    Raises:
        ConfigError: the combination is refused by the family's config.
    """
    inactive = {p.name for p in conditional if not p.active({**base, **sampled})}
    full = {**base, **{k: v for k, v in sampled.items() if k not in inactive}}
    config_cls = family_config(family)
    if "device" in {f.name for f in dataclasses.fields(config_cls)}:
        full["device"] = "cuda" if gpu > 0 else "cpu"
    return config_cls.from_dict(full).to_dict()


def run_facts(family: str, config: dict[str, Any], gpu: float) -> dict[str, str]:
    """Tags the worker adds to every trial: the device and threads it ran on, and the content hash of
    each dataset it reads (``dataset:<name>``; the driver logs those as MLflow dataset inputs)."""
    import torch

    device = "cpu"
    if gpu > 0 and torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {gpu:g} of a GPU)"
    facts = {"device": device, "torch_threads": str(torch.get_num_threads()), "hostname": socket.gethostname()}
    facts.update({f"{DATASET_TAG}{name}": digest for name, digest in family_datasets(family, config).items()})
    return facts


def make_trainable(family: str, base: dict[str, Any], cpu: float, gpu: float,
                   conditional: Sequence[Param] = (),
                   completed: Mapping[str, dict[str, Any]] | None = None,
                   stream_output: bool = False) -> Callable[[dict[str, Any]], None]:
    """The function trainable of one sweep: ``base`` overlaid by the trial's sampled config.

    The trial's output goes to ``output.log`` in its trial folder (:mod:`search.trial_output`),
    and on to Ray's worker output too with ``stream_output``.

    A ``conditional`` parameter that a searcher sampled although its condition does not hold
    (random, grid) is dropped, so the base value is used. ``completed`` (on resume): trials
    that had finished although Tune's last snapshot did not know it yet; they report their
    final result again and end, without training.
    """
    completed = dict(completed or {})

    def trainable(config: dict[str, Any]) -> None:
        final = completed.get(tune.get_context().get_trial_id())
        if final is not None:
            tune.report(final)
            return
        cap_threads(int(cpu))
        if gpu <= 0:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        trial_dir = Path(tune.get_context().get_trial_dir())
        scratch = use_scratch(trial_dir)
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)  # a line per checkpoint
        try:
            with trial_output(trial_folder(trial_dir), tee=stream_output):
                run_trial(trial_dir, config)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def run_trial(trial_dir: Path, config: dict[str, Any]) -> None:
        marker = trial_dir / MARKER
        if marker.exists():
            raise TrialError(*marker.read_text().split("\n", 1))
        reporter = TuneReporter()
        try:
            full = resolve_config(family, base, config, conditional, gpu)
            reporter.tags(run_facts(family, full, gpu))
            family_run(family)(full, reporter)
        except Exception as err:  # classify, remember deterministic ones, re-raise for Tune
            failure = classify(err)
            if failure in DETERMINISTIC:
                trial_dir.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{failure}\n{err}")
            raise TrialError(failure, f"{type(err).__name__}: {err}") from err
        finally:
            reporter.close()

    trainable.__name__ = f"dynsweep_{family}"
    return trainable
