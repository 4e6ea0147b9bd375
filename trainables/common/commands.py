"""The shape of a ``dynsweep data <name>`` sub-command that a family contributes."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

from cliargs import ROOT_HELP, existing_or_creatable_dir
from .progress import progress_printer

__all__ = ["DataCommand", "add_root", "progress_printer"]


@dataclass(frozen=True)
class DataCommand:
    """help: one line for ``dynsweep data -h``; add_arguments fills the sub-parser;
    run executes it and returns the exit status."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_root(p: argparse.ArgumentParser) -> None:
    """The ``--root`` option every data command shares (a folder, or a path where one can be made)."""
    p.add_argument("--root", type=existing_or_creatable_dir, default=None, help=ROOT_HELP)
