"""``dynsweep data frames``: render a frame dataset (train / val / test splits) of a world-model env."""

from __future__ import annotations

import argparse
from pathlib import Path

from cliargs import non_negative_int, positive_float, positive_int
from trainables.common.commands import DataCommand, add_root
from trainables.common.progress import progress_printer


def _env(text: str) -> str:
    from trainables.common.errors import ConfigError
    from trainables.worldmodels.envs import canonical_env

    from .render import VIEWS

    try:
        env = canonical_env(text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("config.env: ")) from None
    if env not in VIEWS:
        raise argparse.ArgumentTypeError(f"{text!r} cannot be rendered; allowed: {', '.join(VIEWS)}")
    return env


def _size(text: str) -> int:
    from .data import MIN_SIZE

    value = positive_int(text)
    if value < MIN_SIZE or value % 8:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: a multiple of 8, >= {MIN_SIZE} (e.g. 32, 64)")
    return value


def _add(p: argparse.ArgumentParser) -> None:
    from .render import COLOUR_MODES, VIEWS

    p.add_argument("--env", type=_env, required=True, help="environment: " + ", ".join(VIEWS))
    p.add_argument("--seqs", type=positive_int, required=True,
                   help="training sequences (val, test: max(2, seqs // 5) each)")
    p.add_argument("--steps", type=positive_int, default=60, help="actions per sequence (steps + 1 frames)")
    p.add_argument("--size", type=_size, default=64, help="frame size in pixels (square; a multiple of 8; default 64)")
    p.add_argument("--colour", choices=tuple(COLOUR_MODES), default="grey", help="grey (1 channel, default) or rgb")
    p.add_argument("--dt", type=positive_float, default=None, help="sample spacing, s (default: the env's)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--hold", type=positive_int, default=5, help="samples each random action is held")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    add_root(p)


def _run(args: argparse.Namespace) -> int:
    from trainables.worldmodels.data import WorldSpec

    from .data import FrameSpec, ensure, write

    spec = FrameSpec(WorldSpec(env=args.env, seqs=args.seqs, steps=args.steps, dt=args.dt, seed=args.seed,
                               hold=args.hold), size=args.size, colour=args.colour)
    show = progress_printer(f"data frames {spec.name}", "sequences")
    if args.overwrite:
        folder, created = write(spec, args.root, overwrite=True, progress=show), True
    else:
        folder, created = ensure(spec, args.root, progress=show)
    sizes = spec.world.split_sizes()
    print(("wrote " if created else "exists, same parameters: ") + f"{folder}  (train {sizes['train']}, val "
          f"{sizes['val']}, test {sizes['test']} sequences x {spec.world.steps + 1} frames of {spec.size}x{spec.size} "
          f"{spec.colour}, dt {spec.world.step_dt:g} s)")
    from trainables.common.parquet_store import read_dynsweep_metadata

    outside = {s: int(read_dynsweep_metadata(folder / f"{s}.parquet").get("out_of_view", 0)) for s in sizes}
    if any(outside.values()):
        print(f"note: {sum(outside.values())} frames show the object only in part or not at all (it left the field "
              f"of view: {', '.join(f'{s} {n}' for s, n in outside.items())})")
    return 0


COMMANDS: dict[str, DataCommand] = {
    "frames": DataCommand("render a frame dataset of a world-model env (pendulum, oscillator, spaceship)",
                          _add, _run),
}


def describe(path: Path) -> str | None:
    """``dynsweep data ls`` line for a frame dataset folder (None for anything else)."""
    if not (path.is_dir() and all((path / f"{s}.parquet").exists() for s in ("train", "val", "test"))):
        return None
    from trainables.common.parquet_store import read_dynsweep_metadata, read_footer

    from .data import FORMAT

    meta = read_dynsweep_metadata(path / "train.parquet")
    if meta.get("format") != FORMAT:
        return None
    p, frame = meta.get("params", {}), meta.get("frame", {})
    steps = (p.get("world") or {}).get("steps", 0)
    rows = {s: read_footer(path / f"{s}.parquet").num_rows // (steps + 1) for s in ("train", "val", "test")}
    return (f"{path}  (frames, env {(p.get('world') or {}).get('env')}: train {rows['train']} / val {rows['val']} / "
            f"test {rows['test']} sequences x {steps + 1} frames of {frame.get('size')}x{frame.get('size')} "
            f"{p.get('colour')})")
