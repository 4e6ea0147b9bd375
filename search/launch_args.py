"""Arguments of ``dynsweep validate`` and ``dynsweep launch`` (kept apart so the CLI starts without Ray)."""

from __future__ import annotations

import argparse
import importlib
import os
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
    add_cluster_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no live progress line")


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Options for running on an existing cluster (see ``cluster/connect.py``)."""
    p.add_argument("--auth-token-file", default=None, help="the cluster's Ray auth token file (RAY_AUTH_TOKEN_PATH)")
    p.add_argument("--no-ship-code", action="store_true",
                   help="with --address: use the dynsweep installed on the cluster instead of shipping this one")


def apply_cluster_arguments(args: argparse.Namespace) -> None:
    if getattr(args, "auth_token_file", None):
        path = Path(args.auth_token_file).expanduser()
        if not path.is_file():
            from trainables.common.errors import ConfigError

            raise ConfigError(f"--auth-token-file: {path} does not exist")
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path.resolve())
    if getattr(args, "no_ship_code", False):
        os.environ["DYNSWEEP_SHIP_CODE"] = "0"


def lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports ``search.launch`` (and Ray) only when the command runs."""

    def handler(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module("search.launch"), name)(args))

    return handler
