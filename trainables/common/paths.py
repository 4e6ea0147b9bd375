"""Where datasets live: ``$DYNSWEEP_DATASETS`` if set, else ``./datasets`` (every family)."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """The datasets root: ``$DYNSWEEP_DATASETS`` if set, else ``./datasets``."""
    return Path(os.environ.get("DYNSWEEP_DATASETS", "datasets"))
