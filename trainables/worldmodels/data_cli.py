"""``dynsweep data worlds``: generate a world-model dataset (train / val / test splits)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cliargs import non_negative_int, positive_float, positive_int
from trainables.common.commands import DataCommand, add_root
from trainables.common.progress import progress_printer


def _env(text: str) -> str:
    from trainables.common.errors import ConfigError

    from .envs import canonical_env

    try:
        return canonical_env(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("config.env: ")) from None


def _add(p: argparse.ArgumentParser) -> None:
    from .envs import ENVS

    p.add_argument("--env", type=_env, required=True,
                   help="environment: " + ", ".join(ENVS) + " (any case, '_' or '-': three_body)")
    p.add_argument("--seqs", type=positive_int, required=True,
                   help="training sequences (val, test: max(2, seqs // 5) each)")
    p.add_argument("--steps", type=positive_int, default=50, help="actions per sequence (steps + 1 states)")
    p.add_argument("--dt", type=positive_float, default=None, help="sample spacing, s (default: the env's)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--hold", type=positive_int, default=5, help="samples each random action is held")
    p.add_argument("--scheme", choices=("rk4", "symplectic_euler"), default="rk4",
                   help="integration of the simulated data: rk4 (default, the reference) or symplectic_euler "
                        "(as the reference three-body code)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    add_root(p)


def _run(args: argparse.Namespace) -> int:
    from .data import WorldSpec, ensure, write

    spec = WorldSpec(env=args.env, seqs=args.seqs, steps=args.steps, dt=args.dt, seed=args.seed, hold=args.hold,
                     scheme=args.scheme)
    show = progress_printer(f"data worlds {spec.name}", "sequences")
    if args.overwrite:
        folder, created = write(spec, args.root, overwrite=True, progress=show), True
    else:
        folder, created = ensure(spec, args.root, progress=show)
    sizes = spec.split_sizes()
    print(("wrote " if created else "exists, same parameters: ") + f"{folder}  (train {sizes['train']}, val "
          f"{sizes['val']}, test {sizes['test']} sequences x {spec.steps + 1} states, dt {spec.step_dt:g} s)")
    return 0


COMMANDS: dict[str, DataCommand] = {
    "worlds": DataCommand("generate a world-model dataset (forced oscillator, pendulum, spaceship, three-body)",
                          _add, _run),
}


def describe(path: Path) -> str | None:
    """``dynsweep data ls`` line for a world-model dataset folder (None for anything else)."""
    if not (path.is_dir() and all((path / f"{s}.parquet").exists() for s in ("train", "val", "test"))):
        return None
    from trainables.common.parquet_store import read_dynsweep_metadata, read_footer

    meta = read_dynsweep_metadata(path / "train.parquet")
    if meta.get("format") != "dynsweep.worlds/1":
        return None
    p = meta.get("params", {})
    rows = {s: read_footer(path / f"{s}.parquet").num_rows // (p.get("steps", 0) + 1) for s in ("train", "val", "test")}
    return (f"{path}  (world model, env {p.get('env')}: train {rows['train']} / val {rows['val']} / test "
            f"{rows['test']} sequences x {p.get('steps')} actions, hold {p.get('hold')})")
