"""Session-wide test setup: dynsweep's cache folder (the MLflow store template) is a temporary
folder of this test session, removed at the end, so tests leave the user's cache as it was."""

from __future__ import annotations

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="dynsweep-test-cache-")
os.environ["DYNSWEEP_CACHE_DIR"] = _CACHE


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)
