"""The users' HDF5 rollout layout, converted once to Parquet (needs the ``hdf5`` extra: h5py).

Layout read::

    /parameter_names            names of the swept parameters (a string dataset, or a root attribute)
    /param_<N>/param_state      the parameter values of rollout N, indexed like parameter_names
    /param_<N>  attributes      outputs, e.g. "metabolic/cot/MA/mean" = 1.23 (scalars); attributes of
                                sub-groups count too, named by their path ("metabolic/cot/MA" + "mean")

Written: one row per ``param_<N>`` with ``param_id`` (int64, N), one float64 column per parameter
name and one per output path (NaN where a rollout lacks that output; training drops such rows),
through the shared atomic, overwrite-refusing Parquet writer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


def convert(h5_path: str | Path, out_path: str | Path, overwrite: bool = False) -> tuple[int, list[str], list[str]]:
    """Convert ``h5_path`` to the Parquet file ``out_path``; returns (rows, parameter names, output names).

    Raises:
        DataError: the file lacks ``parameter_names`` or ``param_<N>`` groups, or a ``param_state``
            has the wrong length (the message names the file and the group).
    """
    try:
        import h5py
    except ImportError:
        raise DataError("reading HDF5 needs h5py: pip install 'dynsweep[hdf5]'") from None
    h5_path = Path(h5_path)
    try:
        f = h5py.File(h5_path, "r")
    except OSError as err:
        raise DataError(f"{h5_path}: not a readable HDF5 file: {err}") from None
    with f:
        if "parameter_names" in f:
            params = _names(f["parameter_names"][()])
        elif "parameter_names" in f.attrs:
            params = _names(f.attrs["parameter_names"])
        else:
            raise DataError(f"{h5_path}: no parameter_names dataset or attribute")
        groups = sorted(((int(m[1]), k) for k in f if (m := GROUP.match(k))), key=lambda t: t[0])
        if not groups:
            raise DataError(f"{h5_path}: no param_<N> groups; it has {', '.join(list(f)[:10])}")
        rows: list[dict[str, float]] = []
        for n, key in groups:
            if "param_state" not in f[key]:
                raise DataError(f"{h5_path}: /{key} has no param_state dataset")
            state = np.asarray(f[key]["param_state"][()], dtype=float).reshape(-1)
            if len(state) != len(params):
                raise DataError(f"{h5_path}: /{key}/param_state has {len(state)} values for {len(params)} "
                                f"parameter_names ({', '.join(params)})")
            rows.append({"param_id": n, **dict(zip(params, state)), **_outputs(f[key])})
    outputs = sorted({k for r in rows for k in r} - set(params) - {"param_id"})
    clash = set(params) & set(outputs)
    if clash:
        raise DataError(f"{h5_path}: names used both as parameter and output: {sorted(clash)}")
    schema = pa.schema([("param_id", pa.int64())] + [(c, pa.float64()) for c in params + outputs])
    meta = {"format": "dynsweep.hdf5_rollouts/1", "source": str(h5_path), "parameters": params, "outputs": outputs}
    with BufferedParquetWriter(out_path, schema, 65_536, meta, overwrite=overwrite) as w:
        w.write({"param_id": np.array([r["param_id"] for r in rows], dtype=np.int64),
                 **{c: np.array([r.get(c, np.nan) for r in rows], dtype=float) for c in params + outputs}})
    return len(rows), params, outputs
