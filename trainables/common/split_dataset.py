"""Datasets stored as a folder of train / val / test Parquet splits (world models, frames).

A dataset is ``<root>/<name>/`` holding one Parquet file per split, each written with the shared
atomic, overwrite-refusing :class:`~.parquet_store.BufferedParquetWriter` (content hash in its
footer). :func:`write_splits` writes every split into a temporary folder beside the target and
publishes it whole (the folder appears complete or not at all); :func:`ensure_splits` writes it
when missing and refuses a same-named folder written with other parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .errors import DatasetExistsError
from .parquet_store import BufferedParquetWriter, publish_folder, read_dynsweep_metadata
from .paths import default_root

SPLITS = ("train", "val", "test")


def write_splits(final: Path, sizes: Mapping[str, int], schema: pa.Schema,
                 split_data: Callable[[str], tuple[Mapping[str, np.ndarray], Mapping[str, Any]]],
                 overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
                 row_group_size: int = 65_536) -> Path:
    """Write each split of ``sizes`` (sequences per split) as ``final/<split>.parquet``:
    ``split_data(split)`` gives its ``(columns, footer metadata)``; ``progress(done, total)``
    (sequences) after each.

    Raises:
        DatasetExistsError: ``final`` exists and ``overwrite`` is false (nothing written).
    """
    if final.exists() and not overwrite:
        raise DatasetExistsError(f"dataset {final} already exists; refusing to overwrite it (use --overwrite)")
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        done = 0
        for split, size in sizes.items():
            columns, metadata = split_data(split)
            with BufferedParquetWriter(tmp / f"{split}.parquet", schema, row_group_size, metadata) as w:
                w.write(columns)
            done += size
            if progress:
                progress(done, sum(sizes.values()))
        publish_folder(tmp, final, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def ensure_splits(final: Path, params: Any, write: Callable[[], Path],
                  saved: Callable[[Any], Any] = lambda have: have) -> tuple[Path, bool]:
    """``(final, created)``: the dataset folder, written by ``write()`` when missing. An existing one
    must have been written with ``params`` (``saved`` maps the footer's ``params`` to today's form,
    for folders written before a parameter existed).

    Raises:
        DatasetExistsError: a same-named folder written with other parameters.
    """
    if not final.exists():
        try:
            return write(), True
        except DatasetExistsError:  # another process wrote it meanwhile: check it like any other
            pass
    have = saved(read_dynsweep_metadata(final / "train.parquet").get("params"))
    if have != json.loads(json.dumps(params)):
        raise DatasetExistsError(f"dataset {final} exists with other parameters {have}; refusing to replace it")
    return final, False


def named_folder(dataset: str, datasets_root: str | None) -> Path:
    """The folder a config's ``dataset`` names: a path to a folder, else a name under the datasets
    folder (``datasets_root``, else :func:`~.paths.default_root`)."""
    path = Path(dataset)
    return path if path.is_dir() else (Path(datasets_root) if datasets_root else default_root()) / dataset


def split_hashes(folder: Path) -> dict[str, str]:
    """``{"<folder name>/<split>": content hash}`` of a split dataset folder (read from the footers)."""
    return {f"{folder.name}/{s}": read_dynsweep_metadata(folder / f"{s}.parquet")["content_sha256"] for s in SPLITS}
