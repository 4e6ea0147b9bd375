"""Arguments of ``dynsweep validate`` and ``dynsweep launch`` (kept apart so the CLI starts without Ray)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cliargs import STORAGE_HELP, non_negative_float, positive_float


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="sweep YAML, or the name of a shipped search space (`dynsweep examples`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the YAML (dotted; the value is YAML; repeatable; a single value "
                        "always overrides), e.g. --set search.num_samples=20 --set base.rtol=1e-6")


def add_launch_arguments(p: argparse.ArgumentParser) -> None:
    add_validate_arguments(p)
    p.add_argument("--storage", default=None, help=STORAGE_HELP.replace("(default: runs)",
                                                                         "(default: the spec's `storage`, else runs)"))
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the spec's tracking.uri, else "
                        "sqlite:///<sweep folder>/mlflow.db)")
    p.add_argument("--resume-existing", action="store_true",
                   help="when the sweep folder holds this sweep already, resume it (errored trials from their last "
                        "checkpoint) instead of refusing: for batch jobs that are requeued after preemption and "
                        "Kubernetes jobs that are retried")
    add_ray_arguments(p)
    add_output_arguments(p)


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    """Where a sweep runs: the local Ray's CPUs and GPUs, or a cluster (``launch``, ``resume``, ``extend``)."""
    p.add_argument("--num-cpus", type=non_negative_float, default=None, help="CPUs Ray may use (default: all)")
    p.add_argument("--num-gpus", type=non_negative_float, default=None, help="GPUs Ray may use (default: detected)")
    p.add_argument("--address", default=None,
                   help="an existing Ray cluster: auto (on a cluster node) or head-ip:port; see docs/cluster.md")
    add_cluster_arguments(p)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """How a sweep shows itself while it runs (``launch``, ``resume``, ``extend``)."""
    p.add_argument("--quiet", action="store_true", help="no progress line (the summary is still printed)")
    p.add_argument("--progress-every", type=positive_float, default=None, metavar="SECONDS",
                   help="when stderr is not a terminal (a batch job's log): a progress line every SECONDS "
                        "(default 30, or $DYNSWEEP_PROGRESS_EVERY_S)")
    p.add_argument("--verbose", action="store_true",
                   help="show Ray's own start-up messages and stream every trial's output to this terminal "
                        "(each trial's output is kept in its folder and its MLflow run either way)")


def add_format_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text for people (default) or json for scripts")


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
