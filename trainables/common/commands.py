"""The shape of a ``dynsweep data <name>`` sub-command that a family contributes."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class DataCommand:
    """help: one line for ``dynsweep data -h``; add_arguments fills the sub-parser;
    run executes it and returns the exit status."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_root(p: argparse.ArgumentParser) -> None:
    """The ``--root`` option every data command shares."""
    from pathlib import Path

    p.add_argument("--root", type=Path, default=None,
                   help="datasets folder (default: $DYNSWEEP_DATASETS or ./datasets)")


def progress_printer(label: str, unit: str = "orbits") -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that redraws one line on a terminal's stderr."""
    interactive = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        if interactive:
            end = "\n" if done >= total else ""
            print(f"\r{label}: {done}/{total} {unit} ({100 * done / total:3.0f} %)", end=end,
                  file=sys.stderr, flush=True)

    return show
