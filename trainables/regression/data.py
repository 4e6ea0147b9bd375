"""Tables for the regression family: any Parquet file, read lazily with Polars, and the demo dataset.

The demo (:func:`write_demo`) is a known smooth function of three inputs with gross outliers
injected, so that what a robust loss buys can be measured against the clean truth:

    y_clean = sin(2 x1) + 0.5 x2^2 - 0.3 x1 x3 + 1,   x1, x2, x3 ~ U[-1, 1]
    y = y_clean + N(0, noise^2), and for a fraction ``outlier_fraction`` of rows y += U(3, 6)

(one-sided, as a failed simulation that reports a huge cost would be). Columns ``x1, x2, x3,
y, y_clean, is_outlier``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from trainables.common.dataset_hashes import check as check_hash
from trainables.common.errors import ConfigError, DataError, DatasetExistsError
from trainables.common.parquet_store import BufferedParquetWriter, file_hash, read_footer
from trainables.common.paths import default_root

DEMO_SCHEMA = pa.schema([("x1", pa.float64()), ("x2", pa.float64()), ("x3", pa.float64()), ("y", pa.float64()),
                         ("y_clean", pa.float64()), ("is_outlier", pa.bool_())])


@dataclass(frozen=True)
class DemoSpec:
    rows: int = 4000
    outlier_fraction: float = 0.15
    noise: float = 0.05
    seed: int = 0

    @property
    def name(self) -> str:
        return f"regression_demo_{self.rows}_o{self.outlier_fraction:g}_n{self.noise:g}_seed{self.seed}"


def clean_function(x: np.ndarray) -> np.ndarray:
    """The demo's truth ``(N,)`` of inputs ``(N, 3)``."""
    return np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 - 0.3 * x[:, 0] * x[:, 2] + 1.0


def write_demo(spec: DemoSpec, path: Path, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None) -> str:
    """Generate the demo table into ``path`` (shared atomic writer); returns its content hash.
    ``progress(done, total)`` (rows) is called once the rows are written (one vectorised draw)."""
    rng = np.random.default_rng(spec.seed)
    x = rng.uniform(-1, 1, (spec.rows, 3))
    clean = clean_function(x)
    outlier = rng.random(spec.rows) < spec.outlier_fraction
    y = clean + rng.normal(0, spec.noise, spec.rows) + np.where(outlier, rng.uniform(3, 6, spec.rows), 0.0)
    meta = {"format": "dynsweep.regression_demo/1", "name": spec.name, "params": spec.__dict__,
            "function": "sin(2 x1) + 0.5 x2^2 - 0.3 x1 x3 + 1"}
    with BufferedParquetWriter(path, DEMO_SCHEMA, 65_536, meta, overwrite=overwrite) as w:
        w.write({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y, "y_clean": clean, "is_outlier": outlier})
    digest = w.close()
    if progress:
        progress(spec.rows, spec.rows)
    return digest


def dataset_path(dataset: str | None, demo: DemoSpec, root: str | None) -> Path:
    """The file a config means (see :func:`resolve`), computed without generating or reading it:
    ``dataset`` as a path to an existing file, else as a name under the root; None: the demo's file."""
    base = Path(root) if root is not None else default_root()
    if dataset is not None:
        path = Path(dataset)
        return path if path.is_file() else base / (dataset if dataset.endswith(".parquet") else f"{dataset}.parquet")
    return base / f"{demo.name}.parquet"


def resolve(dataset: str | None, demo: DemoSpec, root: str | None) -> Path:
    """The file a config means: ``dataset`` as a path or a name under the root, or the demo
    (generated on first use; two trials racing to write it both read the first one published)."""
    path = dataset_path(dataset, demo, root)
    if dataset is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_demo(demo, path)
        except DatasetExistsError:
            pass
    return path


def columns_of(path: Path) -> list[str]:
    """Column names of a Parquet file (footer only)."""
    return list(read_footer(path).schema.to_arrow_schema().names)


def check_columns(path: Path, wanted: dict[str, list[str]]) -> None:
    """Refuse a config whose ``{key: [columns]}`` names a column the file lacks, listing those it has."""
    have = columns_of(path)
    for key, cols in wanted.items():
        missing = [c for c in cols if c not in have]
        if missing:
            raise ConfigError(f"config.{key}: column(s) {', '.join(map(repr, missing))} not in {path}; "
                              f"its columns: {', '.join(have)}")


@dataclass
class Table:
    """Rows of a table as float64 arrays: inputs ``(N, in)``, outputs ``(N, out)``, clean ``(N, out)`` or None."""

    x: np.ndarray
    y: np.ndarray
    clean: np.ndarray | None
    path: Path
    content_hash: str
    dropped: int


def load_table(path: Path, inputs: list[str], outputs: list[str], clean: list[str]) -> Table:
    """Read the chosen columns (lazily: nothing else is read); rows with a null or NaN are dropped."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    check_columns(path, {"inputs": inputs, "outputs": outputs, "clean_outputs": clean})
    cols = list(dict.fromkeys(inputs + outputs + clean))
    try:
        lf = pl.scan_parquet(path).select([pl.col(c).cast(pl.Float64) for c in cols])
        total = lf.select(pl.len()).collect().item()
        df = lf.drop_nulls().filter(pl.all_horizontal(pl.all().is_not_nan())).collect()
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError, OSError) as err:
        raise DataError(f"{path}: cannot read columns {cols}: {err}") from None
    if df.height < 2:
        raise DataError(f"{path}: {df.height} usable row(s) after dropping nulls/NaN; need at least 2")
    digest = file_hash(path)
    check_hash(path.stem, digest, path)
    def array(names: list[str]) -> np.ndarray:
        return np.array(df.select(names).to_numpy(), dtype=np.float64, copy=True)  # writable, own memory

    return Table(x=array(inputs), y=array(outputs), clean=array(clean) if clean else None, path=path,
                 content_hash=digest, dropped=total - df.height)


def split_rows(n: int, val_fraction: float, seed: int, validate_on_train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices: a seeded permutation, disjoint unless ``validate_on_train``."""
    order = np.random.default_rng(seed).permutation(n)
    if validate_on_train:
        return np.sort(order), np.sort(order)
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise DataError(f"{n} rows cannot give {n_val} validation rows and at least one training row")
    return np.sort(order[n_val:]), np.sort(order[:n_val])
