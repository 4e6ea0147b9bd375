"""Session-wide test setup, so that tests leave the machine as they found it:

- dynsweep's cache folder (the MLflow store template) is a temporary folder of this session;
- sweeps end without their plots and Optuna study (a few seconds each), except where a test
  checks them (``tests/test_mlflow_view.py``);
- under pytest-xdist (``-n 2`` in pyproject.toml: two test files at a time) each worker has its
  own temporary folder (``$TMPDIR``), inherited by the Ray it starts and that Ray's trials, so a
  test that checks what its trials left in the temporary folder sees only its own;
- the slowest files are collected first (:data:`SLOW_FILES_FIRST`), so the two workers end together;
- when this machine has no Ray auth token yet, the session uses one in ``$RAY_AUTH_TOKEN``
  (Ray 2.60 would otherwise write ``~/.ray/auth_token`` on the first local ``ray.init``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
_TMP = tempfile.mkdtemp(prefix=f"dynsweep-test-tmp-{_WORKER}-") if _WORKER else None
if _TMP:
    os.environ["TMPDIR"] = _TMP
    tempfile.tempdir = None                                # gettempdir() reads $TMPDIR again
    os.environ.setdefault("OMP_NUM_THREADS", "1")          # two workers on two cores: one thread each

SLOW_FILES_FIRST = ("test_outage.py", "test_resume.py", "test_mlflow_view.py", "test_analysis.py",
                    "test_plots_worldmodels_regression.py", "test_sweep_engine.py", "test_cluster.py",
                    "test_plots_pendulum_timestepper.py", "test_worldmodels.py", "test_disk_full.py")
"""Files of several minutes, started first so that the two workers finish together."""


def pytest_collection_modifyitems(session: object, config: object, items: list) -> None:  # type: ignore[type-arg]
    rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: file order kept otherwise
_CACHE = tempfile.mkdtemp(prefix="dynsweep-test-cache-")
os.environ["DYNSWEEP_CACHE_DIR"] = _CACHE
os.environ.setdefault("DYNSWEEP_SWEEP_EXTRAS", "0")  # end-of-sweep plots: tests/test_mlflow_view.py turns them on
if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()):
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)
    if _TMP:
        shutil.rmtree(_TMP, ignore_errors=True)
