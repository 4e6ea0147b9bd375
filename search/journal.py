"""The tracker's write-ahead journal: what Tune told the driver, on disk before MLflow sees it.

MLflow writes happen on a background thread, so a driver killed with SIGKILL loses the writes
still queued. Every event the tracker receives is first appended to
``<sweep>/tracking_journal.jsonl`` (one ``write`` per event: it survives the death of the
process), and ``dynsweep resume`` replays what MLflow is missing. Events::

    {"e": "start",  "trial": id, "name": str, "config": {...}}
    {"e": "result", "trial": id, "step": int, "t": ms, "metrics": {k: v}, "tags": {k: v}}
    {"e": "end",    "trial": id, "status": FINISHED|FAILED|KILLED, "tags": {...},
                    "checkpoint": path or null, "result": {...}}
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.common.errors import ConfigError

JOURNAL = "tracking_journal.jsonl"


@dataclass
class TrialJournal:
    """Everything the journal holds about one trial."""

    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[int, int, dict[str, float], dict[str, str]]] = field(default_factory=list)
    """``(step, timestamp ms, metrics, tags)`` in arrival order."""
    end: dict[str, Any] | None = None


def _event(line: bytes) -> dict[str, Any] | None:
    """One journal line as an event, or None when it is not a well-formed one."""
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("trial"), str):
        return None
    kind = event.get("e")
    if kind == "start":
        ok = isinstance(event.get("name"), str) and isinstance(event.get("config"), dict)
    elif kind == "result":
        metrics, tags = event.get("metrics"), event.setdefault("tags", {})
        ok = (_whole(event.get("step")) and _whole(event.get("t")) and isinstance(metrics, dict)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
              and isinstance(tags, dict))
    elif kind == "end":
        tags, checkpoint = event.setdefault("tags", {}), event.setdefault("checkpoint", None)
        ok = (isinstance(event.get("status"), str) and isinstance(tags, dict)
              and isinstance(checkpoint, (str, type(None))) and isinstance(event.setdefault("result", {}), dict))
    else:
        ok = False
    return event if ok else None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Journal:
    """Append-only JSON lines. Reading skips a line that is not a well-formed event (a torn last
    line after a kill is expected) and nothing else; appending first ends a torn last line, so
    the next event starts on a line of its own. :attr:`bad_lines` lists the line numbers (from 1)
    the last :meth:`read` skipped."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / JOURNAL
        self._fd: int | None = None
        self.bad_lines: list[int] = []
        self.lines = 0

    def append(self, event: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":  # a torn last line (a killed driver)
                tail = os.pread(self._fd, min(size, 2**20), max(0, size - 2**20))
                end = tail.rfind(b"\n")
                if end >= 0 or size <= 2**20:  # cut it off: it holds half an event, and would read as damage
                    os.ftruncate(self._fd, max(0, size - len(tail)) + end + 1)
                else:
                    os.write(self._fd, b"\n")
        os.write(self._fd, (json.dumps(event, default=str) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> dict[str, TrialJournal]:
        """The journal grouped by trial id (empty if there is none)."""
        trials: dict[str, TrialJournal] = defaultdict(TrialJournal)
        self.bad_lines, self.lines = [], 0
        if not self.path.exists():
            return {}
        try:
            data = self.path.read_bytes()
        except IsADirectoryError:
            raise ConfigError(f"{self.path}: a folder, not the sweep's tracking journal") from None
        except OSError as err:
            raise ConfigError(f"{self.path}: the sweep's tracking journal cannot be read "
                              f"({err.strerror or err})") from None
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        self.lines = len(lines)
        for number, line in enumerate(lines, 1):
            event = _event(line)
            if event is None:
                if line.strip():
                    self.bad_lines.append(number)
                continue
            record = trials[event["trial"]]
            if event["e"] == "start":
                record.name, record.config = event["name"], event["config"]
            elif event["e"] == "result":
                record.results.append((event["step"], event["t"], event["metrics"], event.get("tags", {})))
            elif event["e"] == "end":
                record.end = event
        return dict(trials)

    def torn_lines(self) -> list[int]:
        """The skipped lines other than a torn last one (after :meth:`read`): damage a kill does not explain."""
        return [n for n in self.bad_lines if n != self.lines]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_fd": None, "bad_lines": [], "lines": 0}


def completed_after_snapshot(journal: dict[str, TrialJournal], known: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Trials that finished (FINISHED) while Tune's last snapshot still has them unfinished,
    with their final results: a resume reports these results again instead of training."""
    return {tid: rec.end.get("result", {}) for tid, rec in journal.items()
            if rec.end is not None and rec.end["status"] == "FINISHED"
            and known.get(tid) not in (None, "TERMINATED", "ERROR")}
