"""Buffered, atomic, overwrite-refusing Parquet writing and checked reading.

Every family that writes simulation data to Parquet uses :class:`BufferedParquetWriter`: rows
arrive in chunks of any size, are buffered, and are flushed as row groups of exactly
``row_group_size`` rows (ZSTD-compressed) into a temporary file beside the target; ``close``
adds the content hash to the file's key-value metadata and moves the file into place
atomically. A crash leaves the target untouched (and no half-written file under its name).

The content hash is the SHA-256 of every column's name, dtype and bytes (a binary column: each
value's length and bytes), row group by row group; because row groups always have the same size it does not depend on how the caller
chunked its writes, so the same data gives the same hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DataError, DatasetExistsError

METADATA_KEY = "dynsweep"
"""Key of the JSON document every dynsweep Parquet file carries in its key-value metadata."""
HASH_KEY = "dynsweep.content_sha256"
"""Key of the content hash in the key-value metadata."""


def temp_path_for(path: Path) -> Path:
    """A unique hidden temporary path in ``path``'s folder (same file system, so rename is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``path`` atomically; without ``overwrite`` never clobber.

    Without ``overwrite`` a hard link is used (atomic and fails if ``path`` exists), so two
    writers racing for one name cannot silently replace each other's file.
    """
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise DatasetExistsError(
            f"{path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)"
        ) from None
    except OSError:  # file systems without hard links: check, then rename
        if path.exists():
            raise DatasetExistsError(
                f"{path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)"
            ) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def publish_folder(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move the finished dataset folder ``tmp`` to ``final`` so that readers see the old folder or
    the new one, never a missing or half-written one; an existing ``final`` is replaced only with
    ``overwrite`` (else :class:`DatasetExistsError`).

    A new name is one ``rename``. A replacement swaps the two folders in one system call
    (``renameat2(RENAME_EXCHANGE)``, Linux) and then deletes the old one, now under ``tmp``; where
    that call is missing, the old folder is renamed aside first (a window of microseconds)."""
    if not final.exists():
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if not final.exists():
                raise
    if not overwrite:
        raise DatasetExistsError(f"dataset {final} already exists; refusing to overwrite it (use --overwrite)")
    if not _exchange(tmp, final):
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
        os.rename(tmp, final)
        tmp = old
    shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


class BufferedParquetWriter:
    """Write rows to one Parquet file in fixed-size row groups, atomically.

    Args:
        path: the final file.
        schema: the Arrow schema of the rows (column order is the file's).
        row_group_size: rows per row group (the last may be shorter).
        metadata: a JSON-serialisable document stored under :data:`METADATA_KEY`.
        overwrite: replace an existing ``path``; otherwise refuse before writing anything.
        compression: Parquet codec (ZSTD by default).

    Use as a context manager: leaving the block normally publishes the file, leaving it with
    an exception deletes the temporary file and leaves ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, row_group_size: int = 8192,
                 metadata: Mapping[str, Any] | None = None, overwrite: bool = False,
                 compression: str = "zstd") -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DatasetExistsError(
                f"{self.path} already exists; refusing to overwrite it (pass overwrite=True / --overwrite)"
            )
        if row_group_size < 1:
            raise ValueError("row_group_size must be >= 1")
        self.schema = schema.with_metadata({METADATA_KEY: json.dumps(dict(metadata or {}), sort_keys=True)})
        self.row_group_size = row_group_size
        self.overwrite = overwrite
        self.rows_written = 0
        self._buffer: dict[str, list[np.ndarray]] = {name: [] for name in schema.names}
        self._buffered = 0
        self._hash = hashlib.sha256()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        self._writer = pq.ParquetWriter(self._tmp, self.schema, compression=compression)
        self._closed = False

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        """Append rows; ``columns`` maps every schema column to a 1-D array of equal length."""
        missing = set(self.schema.names) - set(columns)
        extra = set(columns) - set(self.schema.names)
        if missing or extra:
            raise ValueError(f"columns do not match the schema: missing {sorted(missing)}, extra {sorted(extra)}")
        lengths = {len(columns[name]) for name in self.schema.names}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        for name in self.schema.names:
            self._buffer[name].append(np.asarray(columns[name]))
        self._buffered += lengths.pop()
        while self._buffered >= self.row_group_size:
            self._flush(self.row_group_size)

    def _flush(self, rows: int) -> None:
        """Write the first ``rows`` buffered rows as one row group and hash them."""
        arrays = []
        for field in self.schema:
            joined = np.concatenate(self._buffer[field.name]) if self._buffer[field.name] else np.empty(0)
            head, tail = joined[:rows], joined[rows:]
            self._buffer[field.name] = [tail] if len(tail) else []
            arr = pa.array(head, type=field.type)
            self._hash.update(field.name.encode())
            self._hash.update(str(field.type).encode())
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                self._hash.update("\0".join(map(str, head)).encode())
            elif pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type) \
                    or pa.types.is_fixed_size_binary(field.type):  # each value's length, then its bytes
                for value in head:
                    self._hash.update(len(value).to_bytes(8, "little"))
                    self._hash.update(bytes(value))
            else:
                self._hash.update(np.ascontiguousarray(head.astype(field.type.to_pandas_dtype())).tobytes())
            arrays.append(arr)
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema),
                                 row_group_size=rows)
        self._buffered -= rows
        self.rows_written += rows

    def close(self, footer: Mapping[str, str] | None = None) -> str:
        """Flush the rest, store the content hash (and ``footer``, key-value metadata known only
        at the end, such as a generation check) and publish the file; returns the hash (hex)."""
        if self._closed:
            return self._hash.hexdigest()
        if self._buffered:
            self._flush(self._buffered)
        digest = self._hash.hexdigest()
        self._writer.add_key_value_metadata({**(footer or {}), HASH_KEY: digest})
        self._writer.close()
        self._closed = True
        try:
            publish(self._tmp, self.path, self.overwrite)
        finally:
            self._tmp.unlink(missing_ok=True)
        return digest

    def abort(self) -> None:
        """Drop everything written so far; the target is left as it was."""
        if not self._closed:
            self._writer.close()
            self._closed = True
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "BufferedParquetWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_footer(path: str | os.PathLike[str]) -> pq.FileMetaData:
    """The Parquet footer of ``path`` (reads a few KB, never the data).

    Raises:
        DataError: naming the file if it is missing, truncated or not Parquet.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    try:
        return pq.read_metadata(p)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{p}: not a readable Parquet file (truncated or corrupt?): {err}") from None


def file_hash(path: str | os.PathLike[str]) -> str:
    """The content hash of a file dynsweep wrote; for a user's own Parquet file, a SHA-256 of its
    size, row count and footer size (cheap: the data is not read)."""
    try:
        return str(read_dynsweep_metadata(path)["content_sha256"])
    except DataError:
        md = read_footer(path)
        return hashlib.sha256(f"{Path(path).stat().st_size}:{md.num_rows}:{md.serialized_size}".encode()).hexdigest()


def read_dynsweep_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON document under :data:`METADATA_KEY`, plus the content hash as ``content_sha256``.

    Raises:
        DataError: naming the file if it is unreadable or was not written by dynsweep.
    """
    kv = read_footer(path).metadata or {}
    raw = kv.get(METADATA_KEY.encode())
    if raw is None or HASH_KEY.encode() not in kv:
        raise DataError(f"{path}: has no dynsweep metadata (not written by dynsweep, or unfinished)")
    doc = json.loads(raw)
    doc["content_sha256"] = kv[HASH_KEY.encode()].decode()
    return doc
