"""``dynsweep data regression-demo`` and ``dynsweep data hdf5-to-parquet``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cliargs import fraction, non_negative_float, non_negative_int, positive_int
from trainables.common.commands import DataCommand, add_root
from trainables.common.errors import ConfigError
from trainables.common.progress import progress_printer


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=positive_int, default=4000, help="rows of the table (default 4000)")
    p.add_argument("--outlier-fraction", type=fraction, default=0.15,
                   help="fraction of rows given a gross error U(3, 6) (default 0.15)")
    p.add_argument("--noise", type=non_negative_float, default=0.05, help="std of the Gaussian noise on every row")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--out", type=Path, default=None, help="file (default: <datasets folder>/<standard name>.parquet)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_root(p)


def _run_demo(args: argparse.Namespace) -> int:
    from .data import DemoSpec, default_root, write_demo

    spec = DemoSpec(rows=args.rows, outlier_fraction=args.outlier_fraction, noise=args.noise, seed=args.seed)
    path = args.out or (args.root or default_root()) / f"{spec.name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = write_demo(spec, path, overwrite=args.overwrite,
                        progress=progress_printer("data regression-demo", "rows"))
    print(f"wrote {path}  ({spec.rows} rows, {spec.outlier_fraction:.0%} outliers, sha256 {digest[:12]}); "
          "columns x1, x2, x3 -> y (y_clean: the truth)")
    return 0


def _add_h5(p: argparse.ArgumentParser) -> None:
    p.add_argument("h5", type=Path, nargs="+", help="HDF5 file(s) with parameter_names and param_<N> groups "
                                                    "(several: the same parameters, one table)")
    p.add_argument("--out", type=Path, default=None, help="Parquet file (default: beside the first, .parquet)")
    p.add_argument("--alias", action="append", default=[], metavar="NAME=OUTPUT",
                   help="name an output column (e.g. cot=metabolic/cot/MA/mean); repeatable")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")


def _run_h5(args: argparse.Namespace) -> int:
    from .hdf5 import convert

    bad = [a for a in args.alias if "=" not in a or not a.split("=", 1)[0] or not a.split("=", 1)[1]]
    if bad:
        raise ConfigError(f"--alias {bad[0]}: expected NAME=OUTPUT (e.g. cot=metabolic/cot/MA/mean)")
    out = args.out or args.h5[0].with_suffix(".parquet")
    done = convert(args.h5, out, overwrite=args.overwrite, aliases=dict(a.split("=", 1) for a in args.alias))
    print(f"wrote {out}  ({done.rows} rollouts; {done.failed} failed rollouts left out; parameters: "
          f"{', '.join(done.parameters)}; {len(done.outputs)} outputs"
          + (f", e.g. {', '.join(done.outputs[:3])}" if done.outputs else "") + ")")
    return 0


COMMANDS: dict[str, DataCommand] = {
    "regression-demo": DataCommand("generate the regression demo table (smooth function + outliers)",
                                   _add_demo, _run_demo),
    "hdf5-to-parquet": DataCommand("convert HDF5 rollouts (param_<N> groups) to a Parquet table", _add_h5, _run_h5),
}


def describe(path: Path) -> str | None:
    """``dynsweep data ls`` line for a regression table dynsweep wrote (None for anything else)."""
    if path.suffix != ".parquet" or not path.is_file():
        return None
    from trainables.common.errors import DataError
    from trainables.common.parquet_store import read_dynsweep_metadata, read_footer

    try:
        meta = read_dynsweep_metadata(path)
    except DataError:
        return None
    kinds = {"dynsweep.regression_demo/1": "regression demo", "dynsweep.hdf5_rollouts/1": "HDF5 rollouts"}
    if meta.get("format") not in kinds:
        return None
    cols = read_footer(path).schema.to_arrow_schema().names
    return (f"{path}  ({kinds[meta['format']]}: {read_footer(path).num_rows} rows; columns {', '.join(cols[:8])}"
            f"{', ...' if len(cols) > 8 else ''}; sha256 {meta['content_sha256'][:12]})")
