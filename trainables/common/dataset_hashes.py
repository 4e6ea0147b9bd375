"""Checking that a node reads the same dataset as the driver.

On a cluster without a shared datasets folder each node generates a standard-named dataset on
first use. Generation is deterministic, but a different library version could change the
bytes; so the driver puts the content hash of every dataset a sweep uses into
``$DYNSWEEP_DATASET_HASHES`` (JSON ``{name: sha256}``), Ray passes it to every trial, and a
family opening a named dataset calls :func:`check` on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import DataError

ENV = "DYNSWEEP_DATASET_HASHES"


def expected(name: str) -> str | None:
    """The content hash the driver recorded for dataset ``name`` (None when it recorded none)."""
    text = os.environ.get(ENV)
    return json.loads(text).get(name) if text else None


def check(name: str, actual: str, folder: Path) -> None:
    """Raise DataError if dataset ``name`` (at ``folder``) differs from the driver's."""
    want = expected(name)
    if want is not None and want != actual:
        raise DataError(f"{folder}: dataset {name} has content hash {actual[:16]}..., the driver's has "
                        f"{want[:16]}...: the nodes do not read the same data. Put the datasets on a path every "
                        "node shares (DYNSWEEP_DATASETS), or use the same dynsweep and numpy versions everywhere")
