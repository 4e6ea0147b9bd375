"""``dynsweep data twobody`` and ``dynsweep data standard``: generate orbit datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from cliargs import non_negative_int, positive_int
from trainables.common.commands import DataCommand, add_root
from trainables.common.progress import progress_printer


def _add_twobody(p: argparse.ArgumentParser) -> None:
    from .elements import KINDS, ORIENTATIONS

    p.add_argument("--kind", choices=list(KINDS), default="complex", help="orbit population (default complex)")
    p.add_argument("--orbits", type=positive_int, required=True, help="number of orbits")
    p.add_argument("--split", choices=["train", "test", "val"], default="train",
                   help="which split the name and standard seed stand for (default train)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="random seed (default: the standard seed of the name, 1000/2000/3000 + orbits "
                        "for train/test/val, so a name always means the same data)")
    p.add_argument("--3d", dest="planar", action="store_false", help="random inclination, RAAN, argp")
    p.add_argument("--orientation", choices=list(ORIENTATIONS), default="fixed",
                   help="planar orbits: " + "; ".join(f"{k}: {v}" for k, v in ORIENTATIONS.items())
                        + " (default fixed; the name gains _<orientation>, the seed stays the base set's, so "
                          "rotated/mirrored sets hold the base orbits turned)")
    p.add_argument("--fixed-nu0", action="store_true", help="every orbit starts at perigee (nu0 = 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")
    add_root(p)


def _describe(path: Path) -> str:
    from .dataset import TwoBodyDataset

    ds = TwoBodyDataset(path)
    return f"{path}  ({ds.n_orbits} orbits x {ds.samples_per_orbit} samples, sha256 {ds.content_hash[:12]})"


def _run_twobody(args: argparse.Namespace) -> int:
    from .dataset import SPLIT_SEED_BASE, TwoBodySpec, default_root, ensure_dataset, write_dataset

    seed = SPLIT_SEED_BASE[args.split] + args.orbits if args.seed is None else args.seed
    spec = TwoBodySpec(kind=args.kind, orbits=args.orbits, split=args.split, seed=seed,
                       planar=args.planar, fixed_nu0=args.fixed_nu0, orientation=args.orientation)
    root = args.root or default_root()
    show = progress_printer(f"data twobody {spec.name}")
    if args.overwrite:
        path, created = write_dataset(spec, root, overwrite=True, progress=show), True
    else:
        path, created = ensure_dataset(spec, root, progress=show)
    print(("wrote " if created else "exists, same parameters: ") + _describe(path))
    return 0


def _run_standard(args: argparse.Namespace) -> int:
    from .dataset import STANDARD_SUITE, default_root, ensure_dataset

    root = args.root or default_root()
    # Check every clash first, so nothing is written when one of them would be refused.
    for spec in STANDARD_SUITE:
        if (root / spec.name).exists():
            ensure_dataset(spec, root)
    for spec in STANDARD_SUITE:
        path, created = ensure_dataset(spec, root, progress=progress_printer(f"data standard {spec.name}"))
        print(("wrote  " if created else "exists ") + _describe(path))
    return 0


def describe(path: Path) -> str | None:
    """``dynsweep data ls`` line for a two-body dataset folder (None for anything else)."""
    if not (path.is_dir() and (path / "samples.parquet").exists() and (path / "orbits.parquet").exists()):
        return None
    return _describe(path)


COMMANDS: dict[str, DataCommand] = {
    "twobody": DataCommand("generate one two-body orbit dataset", _add_twobody, _run_twobody),
    "standard": DataCommand("generate the standard suite (train/test x 1/10/100 orbits, and rotated and "
                            "mirrored test sets); idempotent",
                            add_root, _run_standard),
}
