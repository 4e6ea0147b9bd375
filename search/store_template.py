"""A new embedded MLflow store in milliseconds: copy an empty, fully migrated template.

MLflow builds a new SQLite store by running all of its schema migrations (about 2 s of CPU,
while Ray is starting on the same cores). The first sweep on a machine builds an empty store
once per MLflow version in dynsweep's cache folder (``$DYNSWEEP_CACHE_DIR``, else
``~/.cache/dynsweep``); later sweeps copy it. MLflow still checks the schema version when it
opens the copy, so a stale or foreign template is never used silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """dynsweep's cache folder (not created)."""
    env = os.environ.get("DYNSWEEP_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dynsweep"


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for anything else)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def _template(version: str) -> Path:
    """The empty store for this MLflow version, built (atomically) on first use."""
    folder = cache_dir()
    path = folder / f"mlflow-{version}-empty.db"
    if path.exists():
        return path
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".mlflow-", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # MLflow must create the file itself
    try:
        MlflowClient(f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def prepare_store(uri: str) -> None:
    """If ``uri`` is a SQLite file that does not exist yet, start it from the template.

    Existing stores are never touched; any other URI is left to MLflow. Failing to use the
    cache (read-only home, full disk) only costs the time MLflow takes to build the store.
    """
    target = sqlite_path(uri)
    if target is None or target.exists():
        return
    import mlflow

    tmp = target.with_name(f".{target.name}.tmp")
    try:
        template = _template(mlflow.__version__)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, tmp)
        os.link(tmp, target)  # publish without clobbering a store created meanwhile
    except OSError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
