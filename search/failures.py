"""Failure classes from the text of a trial's error file (no Ray needed)."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

CRASH_SIGNS = ("actordiederror", "actor died", "actor is dead", "worker died", "worker process has died")


def classify_error_text(text: str) -> tuple[str, str]:
    """``(failure class, message)``: the ``[class] message`` of a ``TrialError`` when the trial
    raised one (see ``search.trainable``), else ``crashed`` / ``out-of-memory`` / ``error`` with
    the error's last line."""
    for line in text.splitlines():
        if "TrialError: [" in line or line.startswith("["):
            body = line.split("TrialError: ", 1)[-1]
            cls, _, msg = body[1:].partition("] ")
            return cls, msg.strip()
    lowered = text.lower()
    if any(sign in lowered for sign in CRASH_SIGNS):
        return "crashed", first_line(text)
    if "outofmemory" in lowered or "out of memory" in lowered:
        return "out-of-memory", first_line(text)
    if any(sign in lowered for sign in DISK_FULL_SIGNS):
        return "disk-full", first_line(text)
    return "error", first_line(text)


def first_line(text: str) -> str:
    """The line of an error text that says what happened (the last one outside the traceback)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Traceback", "  "))]
    return lines[-1] if lines else "unknown failure"


DISK_FULL_SIGNS = ("no space left on device", "disk quota exceeded", "database or disk is full")
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full(err: BaseException) -> tuple[str | None, str] | None:
    """``(file, message)`` when ``err`` or an error it came from (``__cause__``/``__context__``, or
    an error text wrapped by Ray) says that the disk is full, else None."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return current.filename if isinstance(current.filename, str) else None, current.strerror or str(current)
        text = str(current)
        if any(sign in text.lower() for sign in DISK_FULL_SIGNS):
            found = re.search(r"(?:No space left on device|Disk quota exceeded)[^'\n]*'([^']+)'", text)
            return (found.group(1) if found else None), first_line(text)
        current = current.__cause__ or current.__context__
    return None


LOW_SPACE_BYTES = 16 * 2**20


def out_of_space(path: Path) -> bool:
    """Whether the filesystem holding ``path`` has (almost) no space left: an error raised while
    it is so full is taken for a disk-full error even when the library that met it lost the
    ``ENOSPC`` (Tune reading back an error file that could not be written, ...)."""
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    try:
        return shutil.disk_usage(probe).free < LOW_SPACE_BYTES
    except OSError:
        return False
