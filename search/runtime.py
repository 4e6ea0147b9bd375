"""Starting and stopping the local Ray for a sweep, with bounded temp/spill folders.

Ray's temp folder (session logs, sockets, spilled objects) goes inside the sweep folder
(``<sweep>/ray``; a short folder under /tmp when that path is too long for Ray's Unix sockets),
the dashboard is off unless asked for, and :func:`ray_session` removes the session folder when
the sweep ends, also after Ctrl-C or an exception. Only the Ray it started is shut down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

MAX_TEMP_DIR_LEN = 60
"""Ray puts Unix sockets under its temp folder; AF_UNIX paths are limited to ~107 bytes."""

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


def ray_temp_dir(sweep_dir: Path) -> Path:
    """Where Ray's temp files go for this sweep (created)."""
    preferred = sweep_dir / "ray"
    if len(str(preferred)) <= MAX_TEMP_DIR_LEN:
        preferred.mkdir(parents=True, exist_ok=True)
        return preferred
    return Path(tempfile.mkdtemp(prefix="dynsweep-ray-", dir="/tmp"))


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
                address: str | None = None, dashboard: bool = False) -> Iterator[Path | None]:
    """Start (or join) Ray for one sweep; yields the temp folder it uses (None when joining).

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
    temp = ray_temp_dir(sweep_dir)
    spill = temp / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, _temp_dir=str(temp), include_dashboard=dashboard,
             logging_level=logging.WARNING, log_to_driver=False, configure_logging=True,
             _system_config={"object_spilling_config": json.dumps(
                 {"type": "filesystem", "params": {"directory_path": str(spill)}})})
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


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
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
