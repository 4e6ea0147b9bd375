"""A trial's own output (stdout and stderr, Python's and C libraries') kept in its trial folder.

Ray writes a worker's output to its session folder, which the sweep removes when it ends; so
the trainable sends it to ``<trial folder>/output.log`` instead (appended: a retried or
resumed trial adds to it, after a header line per attempt), and the driver logs that file to
the trial's MLflow run. With ``tee`` (``dynsweep launch --verbose``) it also goes on to the
worker's own output, which Ray then streams to the driver's terminal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path

OUTPUT_FILE = "output.log"


@contextlib.contextmanager
def trial_output(trial_dir: Path, tee: bool = False) -> Iterator[Path]:
    """File descriptors 1 and 2 of this process go to ``trial_dir/output.log`` inside the block
    (and to where they went before, with ``tee``); yields the file's path."""
    path = trial_dir / OUTPUT_FILE
    trial_dir.mkdir(parents=True, exist_ok=True)
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(log, f"=== {dt.datetime.now():%Y-%m-%d %H:%M:%S} attempt on {socket.gethostname()} "
                  f"(pid {os.getpid()}) ===\n".encode())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    pump: threading.Thread | None = None
    if tee:
        read_end, write_end = os.pipe()
        pump = threading.Thread(target=_pump, args=(read_end, log, saved[0]), daemon=True,
                                name="dynsweep-trial-output")
        pump.start()
        target = write_end
    else:
        target = log
    os.dup2(target, 1)
    os.dup2(target, 2)
    try:
        yield path
    except BaseException:  # the traceback, where a user looks first
        traceback.print_exc()
        raise
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        if pump is not None:
            os.close(target)  # the pump reads to the end, then stops
            pump.join(timeout=5)
        owned = (log, saved[0]) if pump is not None and pump.is_alive() else ()  # a child still holds the pipe
        for fd in (*saved, log):
            if fd not in owned:
                os.close(fd)


def _pump(read_end: int, log: int, terminal: int) -> None:
    with os.fdopen(read_end, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            os.write(log, chunk)
            with contextlib.suppress(OSError):
                os.write(terminal, chunk)
