"""``dynsweep data ls``: every dataset under the datasets folder, whatever family wrote it.

The registry hands in every family's ``describe(path) -> str | None``; the first family that recognises an entry describes it; anything else dynsweep wrote is shown from
its Parquet footer (format, rows, content hash), and other files are listed as such.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from .commands import DataCommand, add_root
from .errors import DataError
from .parquet_store import read_dynsweep_metadata, read_footer
from .paths import default_root


def _generic(path: Path) -> str:
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    parts = []
    for f in files:
        try:
            meta = read_dynsweep_metadata(f)
            parts.append(f"{f.name}: {meta.get('format', '?')}, {read_footer(f).num_rows} rows, "
                         f"sha256 {meta['content_sha256'][:12]}")
        except DataError:
            parts.append(f"{f.name}: not written by dynsweep")
    return f"{path}  ({'; '.join(parts) or 'no Parquet files'})"


def describe(path: Path, describers: list[Callable[[Path], str | None]]) -> str:
    """One line about a dataset folder or file: the first of ``describers`` that knows it, else generic."""
    for describer in describers:
        try:
            text = describer(path)
        except DataError as err:
            return f"{path}  (unreadable: {err})"
        if text:
            return text
    return _generic(path)


def _run(args: argparse.Namespace, describers: list[Callable[[Path], str | None]]) -> int:
    root = args.root or default_root()
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".")
                     and (p.is_dir() or p.suffix == ".parquet")) if root.is_dir() else []
    if not entries:
        print(f"no datasets under {root}")
    for p in entries:
        print(describe(p, describers))
    return 0


def ls_command(describers: list[Callable[[Path], str | None]]) -> DataCommand:
    """``dynsweep data ls`` over the given families' describers."""
    return DataCommand("list the datasets under the datasets folder (all families)", add_root,
                       lambda args: _run(args, describers))
