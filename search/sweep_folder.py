"""A sweep's folder: its identity (``sweep.json``), the driver lock, and its trials' states.

``<storage>/<name>/`` holds ``spec.yaml`` (the validated spec, overrides applied),
``sweep.json`` (dynsweep version, spec hash, creation time, tracking URI, datasets folder,
state), ``driver.lock`` (held with ``flock`` by the live driver: the kernel releases it when
the driver dies, even by SIGKILL), ``tune/`` (Ray Tune's experiment), the MLflow files and
``summary.csv``. Paths inside the sweep are stored relative to the folder, so a sweep resumes
from any working directory. Reading trial states parses Tune's newest experiment-state file
as JSON: ``ls`` and ``status`` never start (or import) Ray.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.common.errors import ConfigError

META = "sweep.json"
LOCK = "driver.lock"
SPEC = "spec.yaml"
EMBEDDED = "embedded"
"""``sweep.json``'s tracking URI for the SQLite store inside the sweep folder."""


@dataclass
class TrialRecord:
    """One trial as Tune's last experiment snapshot saw it."""

    trial_id: str
    status: str  # PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # the error file's text, for ERROR trials
    experiment_tag: str = ""  # kept by Tune when it restarts an errored trial under a new id


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class SweepFolder:
    """The folder of one sweep (which may not exist yet)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).resolve()
        self._lock_fd: int | None = None

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC

    @property
    def tune_dir(self) -> Path:
        return self.path / "tune"

    @property
    def name(self) -> str:
        return self.path.name

    def is_sweep(self) -> bool:
        return (self.path / META).is_file()

    # --- identity ------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        path = self.path / META
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: not a dynsweep sweep folder (no {META})") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: unreadable ({err})") from None

    def write_meta(self, **updates: Any) -> dict[str, Any]:
        """Update ``sweep.json`` atomically; returns its new content."""
        meta = self.read_meta() if (self.path / META).exists() else {}
        meta.update(updates)
        tmp = self.path / f".{META}.tmp"
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        os.replace(tmp, self.path / META)
        return meta

    def tracking_uri(self, meta: dict[str, Any] | None = None) -> str:
        """The sweep's MLflow tracking URI (the embedded store resolved inside this folder)."""
        uri = (meta or self.read_meta()).get("tracking_uri", EMBEDDED)
        return f"sqlite:///{self.path / 'mlflow.db'}" if uri == EMBEDDED else uri

    def stored_uri(self, uri: str) -> str:
        """How ``uri`` is recorded: ``embedded`` for this folder's SQLite file, else as given."""
        return EMBEDDED if uri == f"sqlite:///{self.path / 'mlflow.db'}" else uri

    # --- the driver lock ----------------------------------------------------------------
    @contextlib.contextmanager
    def driver_lock(self, command: str) -> Iterator[None]:
        """Hold the sweep's driver lock for the duration; refuse if a live driver holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.driver() or {}
            raise ConfigError(
                f"{self.path}: a driver is running this sweep already (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, `{holder.get('command', '?')}` since {holder.get('since', '?')}); "
                "wait for it to end or stop it (Ctrl-C) first") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "since": dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def driver(self) -> dict[str, Any] | None:
        """The live driver's ``{pid, host, command, since}``, or None when no driver holds the lock."""
        path = self.path / LOCK
        if not path.exists():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = Path(path).read_text()
                try:
                    return json.loads(text) if text else {}
                except json.JSONDecodeError:
                    return {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    # --- trials ---------------------------------------------------------------------------
    def experiment_state(self) -> Path | None:
        """Tune's newest experiment-state file (None before the first snapshot)."""
        files = sorted(self.tune_dir.glob("experiment_state-*.json"))
        return files[-1] if files else None

    def trials(self) -> list[TrialRecord]:
        """The trials of Tune's newest experiment snapshot (empty before the first one)."""
        state_path = self.experiment_state()
        if state_path is None:
            return []
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{state_path}: Tune's experiment state is unreadable ({err})") from None
        records = []
        for trial_json, meta_json in state.get("trial_data", []):
            trial = json.loads(trial_json)
            meta = json.loads(meta_json)
            error = ""
            if trial.get("status") == "ERROR":
                error = self._error_text(trial, meta)
            last = meta.get("last_result") or {}
            records.append(TrialRecord(trial_id=trial["trial_id"], status=trial["status"],
                                       config=trial.get("config") or {},
                                       last_result=last if isinstance(last, dict) else {}, error=error,
                                       experiment_tag=str(trial.get("experiment_tag", ""))))
        return records

    def _error_text(self, trial: dict[str, Any], meta: dict[str, Any]) -> str:
        path = self.tune_dir / str(trial.get("relative_logdir", "")) / (meta.get("error_filename") or "error.txt")
        return path.read_text(errors="replace") if path.is_file() else ""

def find_sweeps(root: Path) -> list[SweepFolder]:
    """The sweep folders directly under ``root`` (sorted by name)."""
    if not root.is_dir():
        return []
    return [SweepFolder(p) for p in sorted(root.iterdir()) if (p / META).is_file()]


def resolve_sweep(target: str, storage: str = "runs") -> SweepFolder:
    """A sweep given as a folder path, or as a name under ``storage``."""
    for candidate in (Path(target), Path(storage) / target):
        folder = SweepFolder(candidate)
        if folder.is_sweep():
            return folder
    known = ", ".join(f.name for f in find_sweeps(Path(storage))) or "none"
    raise ConfigError(f"{target}: no sweep folder there or under {Path(storage).resolve()} "
                      f"(sweeps there: {known})")
