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
import errno
import fcntl
import hashlib
import json
import os
import pickletools
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.common.errors import ConfigError, DynsweepError

META = "sweep.json"
LOCK = "driver.lock"
SPEC = "spec.yaml"
RUN_MAP = "mlflow_runs.json"
"""trial id -> MLflow run id (``__sweep__`` -> the parent run), written by ``search.tracking``."""
TUNE_STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "basic-variant-state-*.json",
                    "searcher-state-*.pkl", "callback-states-*.pkl", "tuner.pkl")
"""Tune's experiment-level state in ``tune/``: what ``Tuner.restore`` reads (the searchers' two
``*-state-*.json`` files are pickles despite their names)."""
LAST_GOOD = "last-good"
"""In ``tune/backup/``: the newest set of Tune's state files that was whole (see
:meth:`SweepFolder.save_tune_state`)."""


def _whole(path: Path) -> bool:
    """Whether a Tune state file was written to the end: a pickle (told by its content: protocol 2+
    starts with PROTO, whatever the file's name) whose opcodes read through to STOP (read, never
    run), else JSON that parses."""
    try:
        data = path.read_bytes()
        if data.startswith(b"\x80"):
            for _ in pickletools.genops(data):
                pass
            return True
        json.loads(data)
        return True
    except (OSError, ValueError, EOFError):
        return False
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


class LockUnsupportedError(DynsweepError):
    """The sweep folder's filesystem cannot hold the driver lock (``flock``)."""


META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "family": (str,), "created": (str,), "spec_sha256": (str,), "tracking_uri": (str,),
    "datasets": (str,), "metric": (str,), "mode": (str,), "state": (str,), "dynsweep_version": (str,),
    "num_samples": (int,), "ray_temp": (str, type(None)), "changes": (list,), "versions": (dict,),
}
"""The ``sweep.json`` keys the readers use, and the JSON types they must have."""
_TYPE_WORDS = {str: "a string", int: "a whole number", list: "a list", dict: "an object", type(None): "null"}


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """``meta`` (parsed ``sweep.json``) if it is an object whose known keys have their types.

    Raises:
        ConfigError: naming ``path`` and the first key that is wrong.
    """
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: not a sweep record (a JSON object), but {_short(meta)}")
    for key, types in META_TYPES.items():
        if key not in meta:
            continue
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(_TYPE_WORDS[t] for t in types)
            raise ConfigError(f"{path}: {key!r} should be {want}, not {_short(value)}")
    if meta.get("mode", "min") not in ("min", "max"):
        raise ConfigError(f"{path}: 'mode' should be 'min' or 'max', not {_short(meta['mode'])}")
    versions = meta.get("versions", {})
    bad = [k for k, v in versions.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"{path}: 'versions' should map package names to version strings ({bad[0]!r} is "
                          f"{_short(versions[bad[0]])})")
    return meta


def read_json(path: Path, what: str) -> Any:
    """The JSON document in ``path``; a missing, unreadable or malformed file is a one-line
    :class:`ConfigError` naming it and ``what`` it is."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file ({what})") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not {what}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    if not data.strip():
        raise ConfigError(f"{path}: empty file, not {what}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not {what} (not UTF-8 text: binary data)") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not {what} (invalid JSON: {err.msg} at line {err.lineno}, "
                          f"column {err.colno})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not {what} (JSON nested too deeply)") from None


def _lock_unsupported(path: Path) -> LockUnsupportedError:
    return LockUnsupportedError(
        f"{path}: the filesystem there does not support file locks (flock; e.g. some NFS mounts), which "
        "dynsweep needs to keep two drivers off one sweep; put the runs folder on a local disk or one with "
        "lock support (--storage, or `storage:` in the sweep YAML)")


def _lock_failed(err: OSError, path: Path) -> DynsweepError:
    if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
        return _lock_unsupported(path)
    return ConfigError(f"{path}: cannot lock the sweep's driver lock ({err.strerror or err})")


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
        """Whether the folder has a ``sweep.json`` (even an unreadable one: its readers say what is wrong)."""
        try:
            return (self.path / META).exists()
        except OSError:
            return False

    # --- identity ------------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """``sweep.json``, checked (:func:`check_meta`).

        Raises:
            ConfigError: missing, unreadable, not JSON, not an object, or a known key of the wrong type.
        """
        path = self.path / META
        if not path.exists():
            raise ConfigError(f"{self.path}: not a dynsweep sweep folder (no {META})")
        return check_meta(read_json(path, "a sweep record (sweep.json)"), path)

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
        made_folder = not self.path.exists()
        lock = self.path / LOCK
        made_lock = not lock.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(f"{lock}: cannot create the sweep's driver lock ({err.strerror or err})") from None

        def undo() -> None:  # a refused driver leaves the folder as it found it
            os.close(fd)
            if made_lock:
                lock.unlink(missing_ok=True)
            if made_folder:
                with contextlib.suppress(OSError):
                    self.path.rmdir()

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.driver() or {}
            raise ConfigError(
                f"{self.path}: a driver is running this sweep already (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, `{holder.get('command', '?')}` since {holder.get('since', '?')}); "
                "wait for it to end or stop it (Ctrl-C) first") from None
        except OSError as err:
            undo()
            raise _lock_failed(err, self.path) from None
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
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            raise ConfigError(f"{path}: the sweep's driver lock cannot be opened ({err.strerror or err})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8", "replace") or "{}")
                except (OSError, ValueError, RecursionError):
                    holder = {}
                return holder if isinstance(holder, dict) else {}
            except OSError as err:
                raise _lock_failed(err, self.path) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    # --- the MLflow run map -------------------------------------------------------------
    def run_map(self) -> dict[str, str]:
        """``mlflow_runs.json`` (trial id -> MLflow run id); empty when the sweep has none yet.

        Raises:
            ConfigError: the file is unreadable, not JSON, or not an object of strings.
        """
        path = self.path / RUN_MAP
        if not path.exists():
            return {}
        data = read_json(path, "the trial -> MLflow run map")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not the trial -> MLflow run map (a JSON object), but {_short(data)}; "
                              "restore it, or launch the sweep again")
        bad = [k for k, v in data.items() if not isinstance(v, str) or not v]
        if bad:
            raise ConfigError(f"{path}: trial {bad[0]!r} maps to {_short(data[bad[0]])}, not an MLflow run id; "
                              "restore the file, or launch the sweep again")
        return data

    # --- trials ---------------------------------------------------------------------------
    def experiment_state(self) -> Path | None:
        """Tune's newest experiment-state file (None before the first snapshot)."""
        files = sorted(self.tune_dir.glob("experiment_state-*.json"))
        return files[-1] if files else None

    def tune_state_files(self) -> list[Path]:
        """Tune's experiment-level state files (:data:`TUNE_STATE_FILES`) in ``tune/``."""
        return sorted(p for pattern in TUNE_STATE_FILES for p in self.tune_dir.glob(pattern) if p.is_file())

    def save_tune_state(self) -> bool:
        """Copy Tune's state files to ``tune/backup/last-good/`` if every one of them is whole.

        Tune rewrites them in place (and copies them again into the storage folder); a kill or a
        full disk in the middle leaves one cut short, and ``Tuner.restore`` fails on it. The copy
        is made in a new folder that then replaces the old one; a copy that fails (the disk is
        full) leaves the previous one. Returns whether a copy was made.
        """
        files = self.tune_state_files()
        if not any(p.name.startswith("experiment_state-") for p in files) or not all(map(_whole, files)):
            return False
        backup = self.tune_dir / "backup"
        tmp, good, old = backup / f".{LAST_GOOD}.tmp", backup / LAST_GOOD, backup / f".{LAST_GOOD}.old"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for path in files:
                shutil.copy2(path, tmp / path.name)
            if not all(_whole(tmp / p.name) for p in files):
                raise OSError("a copy was cut short")
            shutil.rmtree(old, ignore_errors=True)
            if good.exists():
                os.replace(good, old)
            os.replace(tmp, good)
            shutil.rmtree(old, ignore_errors=True)
            return True
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return False

    def repair_experiment_state(self) -> str | None:
        """If one of Tune's state files is not whole, put the last whole set back (the current files
        go to ``tune/backup/broken-<time>/``); returns what was done, or None when nothing needed
        (or could) be done."""
        files = self.tune_state_files()
        broken = [p for p in files if not _whole(p)]
        if not broken:
            return None
        backup = self.tune_dir / "backup"
        good = next((d for d in (backup / LAST_GOOD, backup / f".{LAST_GOOD}.old") if d.is_dir()), None)
        saved = sorted(good.iterdir()) if good is not None else []
        if not any(p.name.startswith("experiment_state-") for p in saved) or not all(map(_whole, saved)):
            return None
        aside = backup / f"broken-{dt.datetime.now():%Y%m%d-%H%M%S}"
        aside.mkdir(parents=True, exist_ok=True)
        for path in files:
            os.replace(path, aside / path.name)
        for path in saved:
            tmp = self.tune_dir / f".{path.name}.tmp"
            shutil.copy2(path, tmp)
            os.replace(tmp, self.tune_dir / path.name)
        return (f"{self.tune_dir}: Tune's state was cut short ({', '.join(p.name for p in broken)}; kept in "
                f"{aside.relative_to(self.path)}); continuing from its last whole copy")

    def trials(self) -> list[TrialRecord]:
        """The trials of Tune's newest experiment snapshot (empty before the first one)."""
        state_path = self.experiment_state()
        if state_path is None:
            return []
        state = read_json(state_path, "Tune's experiment state")
        records = []
        entries = state.get("trial_data", []) if isinstance(state, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(f"{state_path}: not Tune's experiment state (no list of trials in it)")
        for n, entry in enumerate(entries):
            try:
                trial_json, meta_json = entry
                trial, meta = json.loads(trial_json), json.loads(meta_json)
                if not isinstance(trial, dict) or not isinstance(meta, dict):
                    raise TypeError("not objects")
                trial_id, status = trial["trial_id"], trial["status"]
                if not isinstance(trial_id, str) or not isinstance(status, str):
                    raise TypeError("trial_id or status not a string")
            except (TypeError, ValueError, KeyError, RecursionError) as err:
                raise ConfigError(f"{state_path}: trial {n} of Tune's experiment state is unreadable "
                                  f"({type(err).__name__}: {err})") from None
            error = self._error_text(trial, meta) if status == "ERROR" else ""
            last = meta.get("last_result") or {}
            config = trial.get("config") or {}
            records.append(TrialRecord(trial_id=trial_id, status=status,
                                       config=config if isinstance(config, dict) else {},
                                       last_result=last if isinstance(last, dict) else {}, error=error,
                                       experiment_tag=str(trial.get("experiment_tag", ""))))
        return records

    def _error_text(self, trial: dict[str, Any], meta: dict[str, Any]) -> str:
        try:
            path = self.tune_dir / str(trial.get("relative_logdir", "")) / str(meta.get("error_filename")
                                                                                or "error.txt")
            return path.read_text(errors="replace") if path.is_file() else ""
        except (OSError, ValueError):
            return ""

FIND_DEPTH = 3
"""How deep under the runs folder :func:`find_sweeps` looks (a name with ``/`` nests its folder)."""


def find_sweeps(root: Path, depth: int = FIND_DEPTH) -> list[SweepFolder]:
    """The sweep folders under ``root``, sorted by path: those directly under it, and those nested
    in plain folders up to ``depth`` levels (a sweep named ``a/b`` lives in ``<root>/a/b``). A
    folder with a ``sweep.json`` (readable or not) is a sweep and is not searched further;
    folders that cannot be listed are skipped."""
    found: list[SweepFolder] = []

    def walk(folder: Path, level: int) -> None:
        try:
            children = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())
        except OSError:
            return
        for child in children:
            try:
                is_sweep = (child / META).exists()
            except OSError:
                continue
            if is_sweep:
                found.append(SweepFolder(child))
            elif level < depth and not child.is_symlink():
                walk(child, level + 1)

    try:
        if not root.is_dir():
            return []
    except OSError:
        return []
    walk(root, 1)
    return found


def resolve_sweep(target: str, storage: str = "runs") -> SweepFolder:
    """A sweep given as a folder path, or as a name under ``storage``."""
    for candidate in (Path(target), Path(storage) / target):
        folder = SweepFolder(candidate)
        if folder.is_sweep():
            return folder
    known = ", ".join(f.name for f in find_sweeps(Path(storage))) or "none"
    raise ConfigError(f"{target}: no sweep folder there or under {Path(storage).resolve()} "
                      f"(sweeps there: {known})")
