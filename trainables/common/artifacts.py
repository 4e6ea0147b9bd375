"""Artefact formats: the Parquet files a family writes when it evaluates, and what analysis reads.

Every artefact is one Parquet file in ``reporter.artifact_dir()`` whose footer (key-value
metadata) names its format and version:

- ``dynsweep.format``: a dotted id, ``<family>.<what>`` (``twobody.per_point_errors``);
- ``dynsweep.format_version``: an integer, raised when a column changes meaning or goes away.

A family declares its formats as :class:`ArtifactFormat` values (the registry names them);
analysis dispatches on the footer, never on file or column names, so a plot kind states the
format ids it reads and refuses a file of any other. Files are written through
:class:`~trainables.common.parquet_store.BufferedParquetWriter` (atomic, overwritten on a
re-evaluation), with the declared schema: a missing or extra column is an error at write time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from .parquet_store import BufferedParquetWriter

FORMAT_KEY = "dynsweep.format"
VERSION_KEY = "dynsweep.format_version"


@dataclass(frozen=True)
class ArtifactFormat:
    """One artefact file: ``id`` and ``version`` go into the footer, ``file`` is its name in the
    artefact folder, ``schema`` its columns (name -> Arrow type), ``doc`` what a row is (units)."""

    id: str
    version: int
    file: str
    schema: pa.Schema
    doc: str = ""

    def footer(self) -> dict[str, str]:
        return {FORMAT_KEY: self.id, VERSION_KEY: str(self.version)}


def write_artifact(folder: str | Path, fmt: ArtifactFormat, columns: Mapping[str, Any],
                   metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``columns`` (name -> 1-D array, all of one length) as ``folder/fmt.file`` with the
    format's footer; returns the path. Replaces an earlier file of the same name atomically."""
    path = Path(folder) / fmt.file
    writer = BufferedParquetWriter(path, fmt.schema, 1 << 16, metadata, overwrite=True)
    try:
        writer.write({k: np.asarray(v) for k, v in columns.items()})
    except BaseException:
        writer.abort()
        raise
    writer.close(footer=fmt.footer())
    return path


def read_format(path: str | Path) -> tuple[str, int] | None:
    """``(format id, version)`` from a Parquet file's footer, or None when it carries none."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path).metadata or {}
    fid, version = meta.get(FORMAT_KEY.encode()), meta.get(VERSION_KEY.encode())
    if fid is None:
        return None
    return fid.decode(), int(version or 0)
