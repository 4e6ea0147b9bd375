"""Starting and stopping the local Ray for a sweep, with bounded temp/spill folders.

Ray's temp folder (session logs, sockets) goes inside the sweep folder (``<sweep>/ray``) when
that path is short enough for Ray's Unix sockets, else to a short folder of its own,
``/tmp/dynsweep-<uid>/<hash of the sweep folder>`` (the same one for every session of the sweep,
so a resume finds a dead driver's and removes it); spilled objects always go to
``<sweep>/ray_spill``;
the dashboard is off unless asked for, and :func:`ray_session` removes the session folder when
the sweep ends, also after Ctrl-C or an exception. Only the Ray it started is shut down.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAX_TEMP_DIR_LEN = 40
"""Ray puts Unix sockets at ``<temp>/session_<date>_<time>_<us>_<pid>/sockets/plasma_store``:
about 64 characters below the temp folder, and AF_UNIX paths are limited to 107 bytes."""
SHORT_TEMP_ROOT = Path("/tmp")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def ray_temp_dir(sweep_dir: Path) -> Path:
    """Where Ray's temp files go for this sweep (not created): ``<sweep>/ray`` if that absolute
    path has at most MAX_TEMP_DIR_LEN characters, else ``/tmp/dynsweep-<uid>/<12 hex>`` named
    by the sweep folder's absolute path (31 characters; stable across sessions)."""
    preferred = sweep_dir.absolute() / "ray"
    if len(str(preferred)) <= MAX_TEMP_DIR_LEN:
        return preferred
    digest = hashlib.sha256(str(sweep_dir.absolute()).encode()).hexdigest()[:12]
    return SHORT_TEMP_ROOT / f"dynsweep-{os.getuid()}" / digest


def spill_dir(sweep_dir: Path) -> Path:
    """Where Ray spills objects for this sweep (a plain folder: no length limit)."""
    return sweep_dir.absolute() / "ray_spill"


def make_temp_dir(path: Path) -> Path:
    """Create the Ray temp folder; its parent under /tmp is private to this user (0700)."""
    if path.parent.parent == SHORT_TEMP_ROOT:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        if path.parent.stat().st_uid != os.getuid():
            from trainables.common.errors import ConfigError

            raise ConfigError(f"{path.parent} (Ray's temp folders of this user's sweeps) belongs to another user; "
                              "remove it, or run the sweep from a shorter path")
    path.mkdir(parents=True, exist_ok=True)
    return path


def dir_size(path: Path) -> int:
    """Bytes under ``path`` (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@contextlib.contextmanager
def ray_session(sweep_dir: Path, num_cpus: float | None = None, num_gpus: float | None = None,
                address: str | None = None, dashboard: bool = False,
                verbose: bool = False) -> Iterator[Path | None]:
    """Start (or join) Ray for one sweep; yields the temp folder it uses (None when joining).

    ``verbose``: Ray's own start-up warnings (token authentication, ...) and the trials' output
    (prefixed by Ray with the worker) reach the driver's terminal; otherwise neither does.

    If Ray is already initialised in this process it is used as it is and left running.
    """
    import ray

    if ray.is_initialized():
        yield None
        return
    if address:
        from cluster.connect import connect

        connect(address, ship_code=os.environ.get("DYNSWEEP_SHIP_CODE", "1") != "0")
        try:
            yield None
        finally:
            ray.shutdown()
        return
    temp = make_temp_dir(ray_temp_dir(sweep_dir))
    spill = spill_dir(sweep_dir)
    spill.mkdir(parents=True, exist_ok=True)
    try:
        with deferred_interrupt("starting Ray"):  # a half-started Ray would leave its processes behind
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=str(temp), include_dashboard=dashboard,
                     object_spilling_directory=str(spill), log_to_driver=verbose, configure_logging=True,
                     logging_level=logging.INFO if verbose else logging.ERROR)  # Ray's start-up notes: --verbose
        yield temp
    except BaseException:
        with deferred_interrupt("stopping Ray"):
            ray.shutdown()
            remove_ray_folders(sweep_dir)
        raise
    with deferred_interrupt("stopping Ray", then_raise=False):  # the sweep ran to its end: keep its results
        ray.shutdown()
        remove_ray_folders(sweep_dir)


@contextlib.contextmanager
def deferred_interrupt(doing: str, then_raise: bool = True) -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done, then is raised as KeyboardInterrupt (or, with
    ``then_raise=False``, dropped: nothing is left to interrupt).

    For the steps that must not be cut in half (Ray's start and shutdown): the user is told
    once that the interrupt was seen. Only the main thread handles signals; elsewhere a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def note(signum: int, frame: Any) -> None:
        if not seen:
            print(f"\ndynsweep: interrupt received while {doing}; finishing that first (a few seconds)",
                  file=sys.stderr, flush=True)
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if seen and then_raise:
        raise KeyboardInterrupt


def remove_ray_folders(sweep_dir: Path) -> None:
    """Remove this sweep's Ray temp and spill folders (after its Ray is shut down, or died)."""
    for path in (ray_temp_dir(sweep_dir), spill_dir(sweep_dir)):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def sigterm_as_sigint() -> Iterator[None]:
    """Handle SIGTERM (what SLURM and Kubernetes send on preemption) like Ctrl-C.

    Tune stops gracefully on SIGINT only (trials stopped, experiment state saved); SIGTERM
    would kill the driver outright. Ray's core worker installs its own SIGTERM handler in
    ``ray.init``, so this must be entered after Ray started. Only the main thread can install
    signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signal.raise_signal(signal.SIGINT))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cap_threads(n: int) -> None:
    """Numeric threads of this process = ``n`` (env for child libraries, torch if loaded)."""
    n = max(1, int(n))
    for var in THREAD_VARIABLES:
        os.environ[var] = str(n)

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


class SecondInterrupt:
    """Ctrl-C while Tune runs a sweep: the first one stops it cleanly, later ones are ignored.

    Tune's handler takes the first SIGINT (it stops the trials and saves the experiment), then
    puts back the handler it found: this one, which notes further presses instead of raising,
    so that the clean stop is not cut in half (runs left RUNNING, a sweep that looks dead).
    ``kill -9`` still ends the driver at once; ``dynsweep resume`` recovers from that too. A
    press that came before Tune installed its handler is passed on to Tune by :meth:`forward`
    (called at every step of Tune's loop). Usable as a context manager several times.
    """

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir
        self.pressed = 0
        self._pending = False
        self._told = False
        self._tune_seen = False
        self._previous: Any = None

    def __enter__(self) -> SecondInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.pressed += 1
        self._pending = True
        self._tell()

    def _tell(self) -> None:
        if not self._told:
            self._told = True
            print(f"\ndynsweep: stopping: running trials are stopped and the sweep's state is saved "
                  f"(continue it with `dynsweep resume {self.sweep_dir}`); further Ctrl-C are ignored "
                  f"until that is done (`kill -9 {os.getpid()}` abandons it at once)", file=sys.stderr, flush=True)

    def forward(self) -> None:
        """At a step of Tune's loop (main thread): hand a press Tune missed to Tune's handler, and
        tell the user once when Tune's handler took the first press."""
        current = signal.getsignal(signal.SIGINT)
        ours = current == self._handle
        if not ours and current not in (signal.SIG_DFL, signal.SIG_IGN, None):
            self._tune_seen = True
            if self._pending:  # pressed before Tune was listening
                self._pending = False
                signal.raise_signal(signal.SIGINT)
        elif ours and self._tune_seen:  # Tune took a press and put this handler back
            self.pressed = max(self.pressed, 1)
            self._pending = False
            self._tell()
