"""Connecting a sweep's driver to an existing Ray cluster (``dynsweep launch --address``).

- **Code**: by default the driver ships the packages trials import (``search``,
  ``trainables``) to the cluster with a Ray ``runtime_env`` (``py_modules``), so workers
  need only Ray, torch and the other dependencies (the images and setup commands in
  ``cluster/`` install dynsweep itself as well, so ``--no-ship-code`` also works there).
- **Data**: trials read datasets from ``$DYNSWEEP_DATASETS``, passed on to every worker: make it
  a path all nodes share (NFS, Lustre, a Kubernetes volume). Where it is not shared, each node
  generates a standard-named dataset on first use from its name's parameters and seed; the
  content is identical (bit for bit, tested); the driver records each dataset's content hash
  (``$DYNSWEEP_DATASET_HASHES``) and a node whose copy differs fails the trial with a data
  error instead of training on other data.
- **State**: the sweep folder (``storage``) must be a path the driver and every node can reach,
  so that checkpoints written on workers are there for restore and a resume works from
  another machine.
- **Token authentication** (on by default in Ray 2.60): the driver needs the cluster's token
  as ``$RAY_AUTH_TOKEN``, a file named by ``$RAY_AUTH_TOKEN_PATH`` (``--auth-token-file``) or
  ``~/.ray/auth_token`` (``ray get-auth-token`` on the head prints it). When the cluster asks
  for a token, one is there and ``$RAY_AUTH_MODE`` is unset, the connection is retried in token
  mode; without a token, the refusal is reported with these instructions. Authentication is
  never disabled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from trainables.common.errors import ResourceError

SHIPPED_PACKAGES = ("search", "trainables")
TOKEN_HELP = ("the cluster requires its token: export RAY_AUTH_TOKEN=<token>, or pass --auth-token-file FILE "
              "(sets RAY_AUTH_TOKEN_PATH), or put it in ~/.ray/auth_token; `ray get-auth-token` on the head "
              "node prints it")


def token_available() -> bool:
    """Whether this process has a Ray auth token (env, token file, or the default file)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return Path(path).expanduser().is_file()
    return (Path.home() / ".ray" / "auth_token").is_file()


def runtime_env(ship_code: bool = True) -> dict[str, Any]:
    """The ``runtime_env`` of a sweep on a cluster: dynsweep's packages and its datasets folder."""
    passed = ("DYNSWEEP_DATASETS", "DYNSWEEP_DATASET_HASHES")
    env: dict[str, Any] = {"env_vars": {k: os.environ[k] for k in passed if k in os.environ}}
    if ship_code:
        import importlib

        env["py_modules"] = [str(Path(importlib.import_module(name).__file__).parent) for name in SHIPPED_PACKAGES]
        env["excludes"] = ["__pycache__", "*.pyc"]
    return env


def connect(address: str, ship_code: bool = True) -> None:
    """``ray.init`` on an existing cluster, with dynsweep's runtime env and the auth token.

    A cluster that refuses the connection for want of a token is tried once more in token
    mode when this process has a token and ``$RAY_AUTH_MODE`` is unset (the mode must match
    the cluster's, so it is not switched on before a cluster asks for it).
    """
    import ray

    def init() -> None:
        ray.init(address=address, runtime_env=runtime_env(ship_code), logging_level=logging.WARNING,
                 log_to_driver=False)

    try:
        init()
        return
    except Exception as err:  # Ray raises AuthenticationError, ConnectionError, RuntimeError here
        first = err
    ray.shutdown()
    if _auth_refused(first) and os.environ.get("RAY_AUTH_MODE") is None and token_available():
        _token_mode()
        try:
            init()
            return
        except Exception as err:  # noqa: BLE001 - reported below
            first = err
            ray.shutdown()
    if _auth_refused(first):
        raise ResourceError(f"--address {address}: connection refused for want of a valid token; {TOKEN_HELP}") from None
    raise ResourceError(f"--address {address}: cannot connect to a Ray cluster there ({type(first).__name__}: "
                        f"{str(first).splitlines()[0] if str(first) else ''})") from None


def _token_mode() -> None:
    """Switch this process to token mode (Ray reads the mode once; this is what it does itself
    when ``ray.init`` enables token mode for a new local cluster)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._private.authentication.authentication_token_setup import (
            _enable_token_auth,
        )
        from ray._raylet import AuthenticationTokenLoader

        _enable_token_auth()
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # a Ray without these: the environment variable is read at start
        pass


def _auth_refused(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err} {err.__cause__!r}"
    return "InvalidAuthToken" in text or "AuthenticationError" in text or "Unauthenticated" in text
