"""Argument types and shared help texts of the ``dynsweep`` command line, in one place.

The type functions check a value when argparse reads it, so a bad value is refused with one
``error: argument --seed: ...`` line and exit status 2, before any work and before anything is
written. The help texts of options that several commands share (``--storage``,
``--tracking-uri``, ``--sweep``) are defined once here, so every command words them the same.
A package of its own, below every layer: the data commands (``trainables``), the sweep commands
(``search``) and the analysis commands (``analysis``) all use it, and it imports none of them
(nor torch, Ray or MLflow).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

STORAGE_HELP = "runs folder holding the sweep folders (default: runs)"
TRACKING_URI_HELP = ("MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the store the sweep's folder "
                     "records, else sqlite:///<sweep folder>/mlflow.db)")
SWEEP_HELP = "the sweep: its folder, or its name under --storage"
ROOT_HELP = "datasets folder (default: $DYNSWEEP_DATASETS or ./datasets)"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number of at least 1")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (seeds, retries)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be a whole number of at least 0")
    return value


def port(text: str) -> int:
    """A TCP port, 0 (a free one) to 65535."""
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535; 0 picks a free one)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be larger than 0")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} must be 0 or larger")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} must lie between 0 and 1")
    return value


def existing_or_creatable_dir(text: str) -> Path:
    """A folder that exists, or that could be created: no part of the path is a file.

    Nothing is created here (a command refused later must leave the disk as it was).
    """
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
        return path
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            break
    return path


def existing_dir(text: str) -> Path:
    """A folder that exists."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return path
