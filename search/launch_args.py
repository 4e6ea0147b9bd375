"""Arguments of ``dynsweep validate`` and ``dynsweep launch`` (kept apart so the CLI starts without Ray)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="sweep YAML")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    add_validate_arguments(p)
    p.add_argument("--storage", default=None, help="runs folder (overrides the spec's `storage`)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: SQLite in the sweep folder)")
    p.add_argument("--num-cpus", type=float, default=None, help="CPUs Ray may use (default: all)")
    p.add_argument("--num-gpus", type=float, default=None, help="GPUs Ray may use (default: detected)")
    p.add_argument("--address", default=None, help="an existing Ray cluster (auto, ray://host:10001, ip:port)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``search.launch`` (and Ray) only when the command runs."""

    def handler(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module("search.launch"), name)(args))

    return handler
