"""The users' HDF5 rollout layout, converted once to Parquet (needs the ``hdf5`` extra: h5py).

Layout read::

    /parameter_names            names of the swept parameters (a string dataset, or a root attribute)
    /param_<N>/param_state      the parameter values of rollout N, indexed like parameter_names
    /param_<N>  attributes      outputs, e.g. "metabolic/cot/MA/mean" = 1.23 (scalars); attributes of
                                sub-groups count too, named by their path ("metabolic/cot/MA" + "mean")

    /param_<N>  success         optional (attribute or scalar dataset): 0 / false marks a failed
                                rollout, left out of the table and counted

Written: one row per successful ``param_<N>`` with ``param_id`` (int64, N), one float64 column per
parameter name and one per output path, or its alias (NaN where a rollout lacks that output;
training drops such rows), through the shared atomic, overwrite-refusing Parquet writer. Several
files (the same parameters) go into one table with a ``file_index`` column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from trainables.common.errors import DataError
from trainables.common.parquet_store import BufferedParquetWriter

GROUP = re.compile(r"^param_(\d+)$")


def _names(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).reshape(-1)]


def _outputs(group: Any, prefix: str = "") -> dict[str, float]:
    """Scalar numeric attributes of ``group`` and its sub-groups, by path."""
    out: dict[str, float] = {}
    for key, value in group.attrs.items():
        arr = np.asarray(value)
        if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
            out[f"{prefix}{key}"] = float(arr.reshape(-1)[0])
    for key, item in group.items():
        if hasattr(item, "attrs") and hasattr(item, "items"):  # a sub-group
            out.update(_outputs(item, f"{prefix}{key}/"))
    return out


SUCCESS = "success"
"""A rollout's success flag (an attribute or scalar dataset of its group): 0 / false = failed."""


@dataclass
class Converted:
    """What :func:`convert` wrote: rollouts kept, failed rollouts left out, the names."""

    rows: int
    failed: int
    parameters: list[str]
    outputs: list[str]


def _read(h5py: Any, path: Path) -> tuple[list[str], list[dict[str, float]], int]:
    """``(parameter names, one row per successful rollout, failed rollouts)`` of one file."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file: {err}") from None
    with f:
        if "parameter_names" in f:
            params = _names(f["parameter_names"][()])
        elif "parameter_names" in f.attrs:
            params = _names(f.attrs["parameter_names"])
        else:
            raise DataError(f"{path}: no parameter_names dataset or attribute")
        groups = sorted(((int(m[1]), k) for k in f if (m := GROUP.match(k))), key=lambda t: t[0])
        if not groups:
            raise DataError(f"{path}: no param_<N> groups; it has {', '.join(list(f)[:10])}")
        rows: list[dict[str, float]] = []
        failed = 0
        for n, key in groups:
            group = f[key]
            if "param_state" not in group:
                raise DataError(f"{path}: /{key} has no param_state dataset")
            flag = group.attrs.get(SUCCESS, group[SUCCESS][()] if SUCCESS in group else True)
            if not bool(np.asarray(flag).reshape(-1)[0]):
                failed += 1
                continue
            state = np.asarray(group["param_state"][()], dtype=float).reshape(-1)
            if len(state) != len(params):
                raise DataError(f"{path}: /{key}/param_state has {len(state)} values for {len(params)} "
                                f"parameter_names ({', '.join(params)})")
            outputs = {k: v for k, v in _outputs(group).items() if k != SUCCESS}
            rows.append({"param_id": n, **dict(zip(params, state)), **outputs})
    return params, rows, failed


def convert(h5_paths: str | Path | Sequence[str | Path], out_path: str | Path, overwrite: bool = False,
            aliases: Mapping[str, str] | None = None) -> Converted:
    """Convert one or more HDF5 files (the same ``parameter_names``) into the Parquet file ``out_path``.

    Rollouts whose ``success`` flag is false are left out and counted (the footer keeps the count);
    ``aliases`` renames outputs (``{"cot": "metabolic/cot/MA/mean"}``); with several files a
    ``file_index`` column (0, 1, ... in the order given) tells where each row came from.

    Raises:
        DataError: a file lacks ``parameter_names`` or ``param_<N>`` groups, a ``param_state``
            has the wrong length, the files disagree on the parameters, an alias names no output
            (each message names the file and the group or name).
    """
    try:
        import h5py
    except ImportError:
        raise DataError("reading HDF5 needs h5py: pip install 'dynsweep[hdf5]'") from None
    paths = [Path(h5_paths)] if isinstance(h5_paths, (str, Path)) else [Path(p) for p in h5_paths]
    params: list[str] | None = None
    rows: list[dict[str, float]] = []
    failed = 0
    for index, path in enumerate(paths):
        names, file_rows, file_failed = _read(h5py, path)
        if params is not None and names != params:
            raise DataError(f"{path}: parameter_names {names} differ from {paths[0]}'s {params}")
        params = names
        rows += [{**r, "file_index": index} if len(paths) > 1 else r for r in file_rows]
        failed += file_failed
    assert params is not None
    outputs = sorted({k for r in rows for k in r} - set(params) - {"param_id", "file_index"})
    renames = {old: new for new, old in (aliases or {}).items()}
    if len(renames) != len(aliases or {}):
        raise DataError(f"{paths[0]}: two aliases name the same output: {aliases}")
    taken = (set(outputs) - set(renames)) | set(params) | {"param_id", "file_index"}
    clashes = sorted(new for new in renames.values() if new in taken)
    if clashes:
        raise DataError(f"{paths[0]}: alias {', '.join(clashes)} is already a column name")
    unknown = sorted(set(renames) - set(outputs))
    if unknown:
        raise DataError(f"{paths[0]}: alias for {', '.join(unknown)}: no such output; outputs: {', '.join(outputs)}")
    rows = [{renames.get(k, k): v for k, v in r.items()} for r in rows]
    outputs = sorted(renames.get(o, o) for o in outputs)
    clash = set(params) & set(outputs)
    if clash:
        raise DataError(f"{paths[0]}: names used both as parameter and output: {sorted(clash)}")
    index_col = [("file_index", pa.int64())] if len(paths) > 1 else []
    schema = pa.schema([("param_id", pa.int64())] + index_col + [(c, pa.float64()) for c in params + outputs])
    meta = {"format": "dynsweep.hdf5_rollouts/1", "source": ", ".join(map(str, paths)), "parameters": params,
            "outputs": outputs, "failed_rollouts": failed, "aliases": dict(aliases or {})}
    columns: dict[str, Any] = {"param_id": np.array([r["param_id"] for r in rows], dtype=np.int64)}
    if index_col:
        columns["file_index"] = np.array([r["file_index"] for r in rows], dtype=np.int64)
    columns.update({c: np.array([r.get(c, np.nan) for r in rows], dtype=float) for c in params + outputs})
    with BufferedParquetWriter(out_path, schema, 65_536, meta, overwrite=overwrite) as w:
        w.write(columns)
    return Converted(len(rows), failed, params, outputs)
