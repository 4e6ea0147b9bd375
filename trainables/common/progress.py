"""One progress line for long data generation (every family's ``dynsweep data`` command).

On a terminal the line is redrawn in place; elsewhere (a batch job's log) a plain line is
printed every few seconds and at the end, so a log shows that the job is alive without
being flooded::

    data twobody: 120/400 orbits (30%), 4.1 s, eta 9.5 s
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

REDRAW_S = 0.1
"""On a terminal: the shortest time between two redraws."""
LOG_EVERY_S = 5.0
"""Elsewhere: the time between two plain lines."""


class Progress:
    """``update(done, total)`` after each piece of work; the last call (done >= total) ends the line."""

    def __init__(self, label: str, unit: str, stream: TextIO | None = None, interactive: bool | None = None,
                 every_s: float | None = None) -> None:
        self.label, self.unit = label, unit
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            try:
                interactive = self.stream.isatty()
            except (AttributeError, ValueError):
                interactive = False
        self.interactive = interactive
        self.every_s = every_s if every_s is not None else REDRAW_S if interactive else LOG_EVERY_S
        self.start = time.perf_counter()
        self._last = self.start
        self._done_printed = False

    def line(self, done: int, total: int, elapsed: float) -> str:
        pct = 100 * done / total if total else 100.0
        eta = f", eta {elapsed / done * (total - done):.1f} s" if 0 < done < total else ""
        return f"{self.label}: {done}/{total} {self.unit} ({pct:.0f}%), {elapsed:.1f} s{eta}"

    def update(self, done: int, total: int) -> None:
        if self._done_printed:
            return
        now = time.perf_counter()
        finished = done >= total
        if not finished and now - self._last < self.every_s:
            return
        self._last = now
        text = self.line(done, total, now - self.start)
        if self.interactive:
            print(f"\r{text}\033[K", end="\n" if finished else "", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
        self._done_printed = finished

    __call__ = update


def progress_printer(label: str, unit: str = "orbits") -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing :class:`Progress` on stderr."""
    return Progress(label, unit).update
