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

JOURNAL = "tracking_journal.jsonl"


@dataclass
class TrialJournal:
    """Everything the journal holds about one trial."""

    name: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[int, int, dict[str, float], dict[str, str]]] = field(default_factory=list)
    """``(step, timestamp ms, metrics, tags)`` in arrival order."""
    end: dict[str, Any] | None = None


class Journal:
    """Append-only JSON lines; a torn last line (killed mid-write) is ignored on reading."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / JOURNAL
        self._fd: int | None = None

    def append(self, event: dict[str, Any]) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, (json.dumps(event, default=str) + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> dict[str, TrialJournal]:
        """The journal grouped by trial id (empty if there is none)."""
        trials: dict[str, TrialJournal] = defaultdict(TrialJournal)
        if not self.path.exists():
            return {}
        for line in self.path.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            record = trials[event["trial"]]
            if event["e"] == "start":
                record.name, record.config = event["name"], event["config"]
            elif event["e"] == "result":
                record.results.append((event["step"], event["t"], event["metrics"], event.get("tags", {})))
            elif event["e"] == "end":
                record.end = event
        return dict(trials)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_fd": None}


def completed_after_snapshot(journal: dict[str, TrialJournal], known: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Trials that finished (FINISHED) while Tune's last snapshot still has them unfinished,
    with their final results: a resume reports these results again instead of training."""
    return {tid: rec.end.get("result", {}) for tid, rec in journal.items()
            if rec.end is not None and rec.end["status"] == "FINISHED"
            and known.get(tid) not in (None, "TERMINATED", "ERROR")}
