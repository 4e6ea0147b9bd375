"""The reporter contract between a family and whoever runs it (docs/architecture.md).

A family's ``run(config, reporter)`` calls ``reporter.report(step, metrics, checkpoint_dir)``
every few steps (numbers only), ``reporter.tags({name: text})`` for facts about the run (the
content hash of its dataset, why a metric does not apply), asks ``reporter.restore_dir()`` once at the start for a checkpoint to resume
from, and writes artefacts into ``reporter.artifact_dir()``. The Tune adapter in ``search/``
implements this over ``tune.report``; :class:`LocalReporter` runs a family in-process without
Ray (``dynsweep train`` and the tests).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol


class Reporter(Protocol):
    def report(self, step: int, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        """Record metrics at optimiser step ``step``; ``checkpoint_dir`` (if given) is copied now."""

    def tags(self, tags: dict[str, str]) -> None:
        """Record text facts about the run (names declared in the family's registry record)."""

    def restore_dir(self) -> str | None:
        """A checkpoint folder to resume from, or None for a fresh start."""

    def artifact_dir(self) -> Path:
        """A folder for artefacts (per-point errors, plots); created on demand."""


class LocalReporter:
    """Keeps every report in memory, the latest checkpoint on disk, and draws a progress line.

    Args:
        run_dir: folder for ``checkpoint/``, ``artifacts/`` and ``metrics.jsonl``.
        resume_from: a checkpoint folder to hand to the family at the start.
        progress: show progress on stderr: a one-line bar redrawn in place on a terminal; else (a
            batch job's log) a plain timestamped line every ``progress_every_s`` seconds and at the end.
    """

    def __init__(self, run_dir: str | os.PathLike[str], resume_from: str | os.PathLike[str] | None = None,
                 progress: bool = True, progress_every_s: float = 30.0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._resume = str(resume_from) if resume_from else None
        self.history: list[dict[str, Any]] = []
        self.tag_values: dict[str, str] = {}
        self.checkpoints: list[int] = []
        self._progress = progress
        self._every_s = progress_every_s
        self._last_line = -math.inf
        self._start = time.perf_counter()

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint"

    def restore_dir(self) -> str | None:
        return self._resume

    def tags(self, tags: dict[str, str]) -> None:
        self.tag_values.update({k: str(v) for k, v in tags.items()})
        tmp = self.run_dir / ".tags.json.tmp"
        tmp.write_text(json.dumps(self.tag_values, indent=1, sort_keys=True))
        tmp.replace(self.run_dir / "tags.json")

    def artifact_dir(self) -> Path:
        path = self.run_dir / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def report(self, step: int, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        row = {"step": step, **metrics}
        self.history.append(row)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
        if checkpoint_dir is not None:
            tmp = self.run_dir / f".checkpoint.tmp-{uuid.uuid4().hex[:8]}"
            shutil.copytree(checkpoint_dir, tmp)
            old = self.run_dir / f".checkpoint.old-{uuid.uuid4().hex[:8]}"
            if self.checkpoint_path.exists():
                os.rename(self.checkpoint_path, old)
            os.rename(tmp, self.checkpoint_path)
            shutil.rmtree(old, ignore_errors=True)
            self.checkpoints.append(step)
        if self._progress:
            self._draw(step, metrics)

    def _draw(self, step: int, metrics: dict[str, Any]) -> None:
        total = int(metrics.get("total_steps") or 0)
        frac = step / total if total else 0.0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        elapsed = time.perf_counter() - self._start
        eta = elapsed / frac - elapsed if frac > 0 else math.nan
        loss = metrics.get("train_loss", math.nan)
        name = "val_loss" if "val_loss" in metrics else next((k for k in metrics if k.startswith("val_")), None)
        val = f" {'val' if name == 'val_loss' else name} {metrics[name]:.4g}" if name else ""
        rate = metrics.get("steps_per_s", math.nan)
        done = bool(total) and step >= total
        text = f"{step}/{total} loss {loss:.4g}{val} {rate:.1f} steps/s elapsed {elapsed:.0f}s eta {eta:.0f}s"
        if sys.stderr.isatty():
            print(f"\r[{bar}] {text} ", end="\n" if done else "", file=sys.stderr, flush=True)
        elif done or elapsed - self._last_line >= self._every_s:
            self._last_line = elapsed
            print(f"[{time.strftime('%H:%M:%S')}] progress: {text}", file=sys.stderr, flush=True)
