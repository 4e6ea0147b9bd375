"""Two-body orbit datasets: generation, the on-disk layout, and lazy reading.

A dataset is a folder ``<root>/<name>/`` holding two Parquet files:

- ``samples.parquet``: one row per sample, columns ``orbit_id, t, x, y, z, vx, vy, vz, ax,
  ay, az`` in physical units (s, km, km/s, km/s^2), sorted by ``orbit_id`` then ``t``, in
  row groups of 16 orbits so a filter on ``orbit_id`` or ``t`` skips row groups;
- ``orbits.parquet``: one row per orbit, ``orbit_id, a, e, i, raan, argp, nu0, period``
  (km, -, rad, rad, rad, rad, s): the elements, readable without touching the samples.

Both files carry the same metadata document (generation parameters, seed, units, the
canonical-unit scales used for normalisation) and their content hashes; the dataset's
content hash combines the two. The folder is built under a temporary name and renamed into
place, so a dataset either exists completely or not at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import polars as pl
import pyarrow as pa

from trainables.common.dataset_hashes import check as check_hash
from trainables.common.errors import ConfigError, DataError, DatasetExistsError
from trainables.common.parquet_store import BufferedParquetWriter, publish_folder, read_dynsweep_metadata
from trainables.common.paths import default_root

from .constants import SAMPLES_PER_ORBIT, canonical_units
from .elements import KINDS, ORIENTATIONS, draw_elements, orient
from .kepler import period, propagate, sample_times

FORMAT = "dynsweep.twobody/1"
SAMPLES_FILE = "samples.parquet"
ORBITS_FILE = "orbits.parquet"
ORBITS_PER_ROW_GROUP = 16
STATE_COLUMNS = ("x", "y", "z", "vx", "vy", "vz")
ACC_COLUMNS = ("ax", "ay", "az")
ELEMENT_COLUMNS = ("a", "e", "i", "raan", "argp", "nu0")
SPLITS = ("train", "test", "val")
UNITS = {"t": "s", "x,y,z": "km", "vx,vy,vz": "km/s", "ax,ay,az": "km/s^2", "a": "km",
         "i,raan,argp,nu0": "rad", "period": "s"}

SAMPLES_SCHEMA = pa.schema([("orbit_id", pa.int32()), ("t", pa.float64())]
                           + [(c, pa.float64()) for c in STATE_COLUMNS + ACC_COLUMNS])
ORBITS_SCHEMA = pa.schema([("orbit_id", pa.int32())]
                          + [(c, pa.float64()) for c in ELEMENT_COLUMNS + ("period",)])


@dataclass(frozen=True)
class TwoBodySpec:
    """What a two-body dataset is made of; equal specs give byte-identical data.

    kind: ``complex`` | ``simple`` | ``circular`` (see :mod:`.elements`); orbits: count;
    split: ``train`` | ``test`` | ``val`` (a label: independence comes from the seed);
    planar: i = raan = argp = 0, else random 3D orientation; fixed_nu0: start at perigee;
    orientation (planar only): ``fixed`` | ``rotated`` | ``mirrored`` | ``any`` (see
    :data:`.elements.ORIENTATIONS`); the same seed gives the same orbit shapes in every one.
    """

    kind: str = "complex"
    orbits: int = 10
    split: str = "train"
    seed: int = 0
    planar: bool = True
    fixed_nu0: bool = False
    samples_per_orbit: int = SAMPLES_PER_ORBIT
    orientation: str = "fixed"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r} is not a known orbit kind; allowed: {', '.join(KINDS)}")
        if self.split not in SPLITS:
            raise ConfigError(f"split={self.split!r} is not allowed; allowed: {', '.join(SPLITS)}")
        if self.orbits < 1:
            raise ConfigError(f"orbits={self.orbits} must be >= 1")
        if self.samples_per_orbit < 2:
            raise ConfigError(f"samples_per_orbit={self.samples_per_orbit} must be >= 2")
        if self.orientation not in ORIENTATIONS:
            raise ConfigError(f"orientation={self.orientation!r} is not allowed; allowed: {', '.join(ORIENTATIONS)}")
        if not self.planar and self.orientation != "fixed":
            raise ConfigError(f"orientation={self.orientation!r} applies to planar orbits; 3-D orbits are "
                              "always drawn with an isotropic orbital plane and both senses of motion")

    @property
    def name(self) -> str:
        """The users' naming scheme, e.g. ``complex_TBP_planar_10_train``; an orientation other
        than ``fixed`` follows the geometry: ``complex_TBP_planar_rotated_10_test``."""
        geometry = "planar" if self.planar else "3D"
        turn = "" if self.orientation == "fixed" else f"_{self.orientation}"
        nu0 = "_nu0fixed" if self.fixed_nu0 else ""
        return f"{self.kind}_TBP_{geometry}{turn}{nu0}_{self.orbits}_{self.split}"

    def params(self) -> dict[str, Any]:
        """The generation parameters (``orientation`` only when not ``fixed``, so datasets
        written before orientations existed keep matching their spec)."""
        params = asdict(self)
        if self.orientation == "fixed":
            del params["orientation"]
        return params


SPLIT_SEED_BASE = {"train": 1000, "test": 2000, "val": 3000}
"""A named dataset's seed is ``SPLIT_SEED_BASE[split] + orbits``: train, test and validation
sets are independent draws, and a name always means the same data."""

_NAME = re.compile(r"^(?P<kind>[a-z]+)_TBP_(?P<geom>planar|3D)(?:_(?P<turn>rotated|mirrored|any))?"
                   r"(?P<nu0>_nu0fixed)?_(?P<n>[0-9]+)_(?P<split>[a-z]+)$")


def spec_from_name(name: str) -> TwoBodySpec:
    """The spec behind a standard name such as ``complex_TBP_planar_10_test`` (seeded by split).

    Raises:
        ConfigError: the name does not follow
            ``<kind>_TBP_<planar|3D>[_rotated|_mirrored|_any][_nu0fixed]_<orbits>_<split>``.

    The seed does not depend on the orientation: ``complex_TBP_planar_rotated_10_test`` holds
    the orbits of ``complex_TBP_planar_10_test``, each turned to a random argument of perigee.
    """
    m = _NAME.match(name)
    if not m or m["split"] not in SPLIT_SEED_BASE:
        raise ConfigError(f"dataset name {name!r} does not follow <kind>_TBP_<planar|3D>"
                          f"[_rotated|_mirrored|_any][_nu0fixed]_<orbits>_"
                          f"<{'|'.join(SPLIT_SEED_BASE)}>, e.g. complex_TBP_planar_10_train; "
                          "generate other datasets with `dynsweep data twobody`")
    n = int(m["n"])
    return TwoBodySpec(kind=m["kind"], orbits=n, split=m["split"], seed=SPLIT_SEED_BASE[m["split"]] + n,
                       planar=m["geom"] == "planar", fixed_nu0=bool(m["nu0"]), orientation=m["turn"] or "fixed")


def base_set_name(name: str) -> str | None:
    """The fixed-orientation set a rotated/mirrored/any set was turned from
    (``complex_TBP_planar_rotated_10_test`` -> ``complex_TBP_planar_10_test``); None for a fixed
    set or a name outside the standard scheme."""
    m = _NAME.match(name)
    if not m or not m["turn"]:
        return None
    return name[: m.start("turn") - 1] + name[m.end("turn"):]


STANDARD_SUITE: tuple[TwoBodySpec, ...] = tuple(
    spec_from_name(f"complex_TBP_planar{turn}_{n}_{split}")
    for split, turns in (("train", ("",)), ("test", ("", "_rotated", "_mirrored"))) for turn in turns
    for n in (1, 10, 100))
"""Train and test sets of 1, 10 and 100 planar complex orbits, each from its own seed, and the
test sets' rotated and mirrored variants (the same orbits, turned)."""


@dataclass(frozen=True)
class OrbitArrays:
    """Whole orbits as arrays, physical units.

    orbit_id: (n,); t: (n, k) s; states: (n, k, 6) km, km/s; acc: (n, k, 3) km/s^2.
    """

    orbit_id: np.ndarray
    t: np.ndarray
    states: np.ndarray
    acc: np.ndarray

    @property
    def n_orbits(self) -> int:
        return int(self.orbit_id.shape[0])

    @property
    def samples_per_orbit(self) -> int:
        return int(self.t.shape[1])


def generate_arrays(spec: TwoBodySpec, first: int = 0, count: int | None = None,
                    elements: dict[str, np.ndarray] | None = None) -> tuple[OrbitArrays, dict[str, np.ndarray]]:
    """Exact orbits ``first .. first+count`` of ``spec``, and the elements of all its orbits."""
    if elements is None:
        rng = np.random.default_rng(spec.seed)
        drawn = draw_elements(spec.kind, spec.orbits, rng, spec.planar, spec.fixed_nu0)
        elements = (drawn if spec.orientation == "fixed" else orient(drawn, spec.orientation, spec.seed)).as_dict()
    stop = spec.orbits if count is None else min(spec.orbits, first + count)
    sl = slice(first, stop)
    el = {k: v[sl] for k, v in elements.items()}
    t = sample_times(el["a"], spec.samples_per_orbit)
    states, acc = propagate(el["a"], el["e"], el["i"], el["raan"], el["argp"], el["nu0"], t)
    ids = np.arange(first, stop, dtype=np.int32)
    return OrbitArrays(orbit_id=ids, t=t, states=states, acc=acc), elements


def _combined_hash(samples_sha: str, orbits_sha: str) -> str:
    return hashlib.sha256(f"{samples_sha}:{orbits_sha}".encode()).hexdigest()


def write_dataset(spec: TwoBodySpec, root: str | os.PathLike[str] | None = None, overwrite: bool = False,
                  chunk_orbits: int = 256, progress: Callable[[int, int], None] | None = None) -> Path:
    """Generate ``spec`` and write it as ``<root>/<spec.name>/``; returns the folder.

    Orbits are generated ``chunk_orbits`` at a time, so memory stays bounded for any size.
    ``progress(done, total)`` is called after each chunk.

    Raises:
        DatasetExistsError: the folder exists and ``overwrite`` is false (checked before any
            work; the existing dataset is untouched).
    """
    root = Path(root) if root is not None else default_root()
    final = root / spec.name
    if final.exists() and not overwrite:
        raise DatasetExistsError(f"dataset {final} already exists; refusing to overwrite it (use --overwrite)")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{spec.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    meta: dict[str, Any] = {"format": FORMAT, "name": spec.name, "params": spec.params(),
                            "units": UNITS, "normalisation": canonical_units()}
    try:
        rows_per_group = ORBITS_PER_ROW_GROUP * spec.samples_per_orbit
        elements = None
        with BufferedParquetWriter(tmp / SAMPLES_FILE, SAMPLES_SCHEMA, rows_per_group, meta) as w:
            for first in range(0, spec.orbits, chunk_orbits):
                arr, elements = generate_arrays(spec, first, chunk_orbits, elements)
                w.write(_sample_columns(arr))
                if progress:
                    progress(min(first + chunk_orbits, spec.orbits), spec.orbits)
        samples_sha = w.close()
        assert elements is not None
        orbit_cols = {"orbit_id": np.arange(spec.orbits, dtype=np.int32), **elements,
                      "period": period(elements["a"])}
        with BufferedParquetWriter(tmp / ORBITS_FILE, ORBITS_SCHEMA, max(spec.orbits, 1),
                                   {**meta, "samples_sha256": samples_sha}) as w:
            w.write(orbit_cols)
        publish_folder(tmp, final, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _sample_columns(arr: OrbitArrays) -> dict[str, np.ndarray]:
    n, k = arr.t.shape
    cols: dict[str, np.ndarray] = {"orbit_id": np.repeat(arr.orbit_id, k), "t": arr.t.reshape(-1)}
    flat_states = arr.states.reshape(n * k, 6)
    flat_acc = arr.acc.reshape(n * k, 3)
    cols.update({c: flat_states[:, j] for j, c in enumerate(STATE_COLUMNS)})
    cols.update({c: flat_acc[:, j] for j, c in enumerate(ACC_COLUMNS)})
    return cols


class TwoBodyDataset:
    """A dataset on disk, opened lazily: the footers are checked, no sample is read.

    Raises (on construction):
        DataError: the folder or one of its files is missing, corrupt, or not a dynsweep
            two-body dataset; the message names the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"dataset {self.path} does not exist (generate it with `dynsweep data twobody`)")
        self.samples_file = self.path / SAMPLES_FILE
        self.orbits_file = self.path / ORBITS_FILE
        samples_meta = read_dynsweep_metadata(self.samples_file)
        self.meta = read_dynsweep_metadata(self.orbits_file)
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{self.orbits_file}: format {self.meta.get('format')!r} is not {FORMAT!r}")
        if self.meta.get("samples_sha256") != samples_meta["content_sha256"]:
            raise DataError(f"{self.samples_file}: content hash does not match {self.orbits_file}; "
                            "the dataset was modified or mixed with another; regenerate it")
        self.content_hash = _combined_hash(samples_meta["content_sha256"], self.meta["content_sha256"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.meta["params"])

    @property
    def n_orbits(self) -> int:
        return int(self.params["orbits"])

    @property
    def samples_per_orbit(self) -> int:
        return int(self.params["samples_per_orbit"])

    @property
    def normalisation(self) -> dict[str, float]:
        """Canonical-unit scales (divide physical values by them), see :mod:`.constants`."""
        return dict(self.meta["normalisation"])

    def scan(self) -> pl.LazyFrame:
        """All samples as a Polars lazy frame; filters on it are pushed down to row groups."""
        return pl.scan_parquet(self.samples_file)

    def orbits(self) -> pl.DataFrame:
        """The per-orbit elements (one row per orbit), read from the small orbits file."""
        return pl.read_parquet(self.orbits_file)

    def orbit(self, orbit_id: int) -> pl.DataFrame:
        """The samples of one orbit, reading only the row group(s) that hold it."""
        return self._collect(self.scan().filter(pl.col("orbit_id") == orbit_id))

    def select_orbits(self, orbit_ids: Iterable[int]) -> pl.DataFrame:
        """The samples of a set of orbits."""
        ids = sorted({int(i) for i in orbit_ids})
        return self._collect(self.scan().filter(pl.col("orbit_id").is_in(ids)))

    def window(self, t_start: float, t_end: float, orbit_ids: Iterable[int] | None = None) -> pl.DataFrame:
        """Samples with ``t_start <= t < t_end`` (s), optionally only of some orbits."""
        lf = self.scan().filter((pl.col("t") >= t_start) & (pl.col("t") < t_end))
        if orbit_ids is not None:
            lf = lf.filter(pl.col("orbit_id").is_in(sorted({int(i) for i in orbit_ids})))
        return self._collect(lf)

    def arrays(self, orbit_ids: Iterable[int] | None = None) -> OrbitArrays:
        """Whole orbits as arrays (all orbits, or the given ones in increasing id order)."""
        df = self._collect(self.scan()) if orbit_ids is None else self.select_orbits(orbit_ids)
        df = df.sort(["orbit_id", "t"])
        k = self.samples_per_orbit
        n = df.height // k
        if n * k != df.height:
            raise DataError(f"{self.samples_file}: {df.height} rows is not a whole number of {k}-sample orbits")
        return OrbitArrays(
            orbit_id=df["orbit_id"].to_numpy()[::k].copy(),
            t=df["t"].to_numpy().reshape(n, k),
            states=df.select(STATE_COLUMNS).to_numpy().reshape(n, k, 6),
            acc=df.select(ACC_COLUMNS).to_numpy().reshape(n, k, 3),
        )

    def _collect(self, lf: pl.LazyFrame) -> pl.DataFrame:
        try:
            return lf.collect()
        except (pl.exceptions.ComputeError, OSError) as err:
            raise DataError(f"{self.samples_file}: cannot be read (truncated or corrupt?): {err}") from None


def open_dataset(name_or_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> TwoBodyDataset:
    """Open a dataset by name (under ``root``) or by path."""
    p = Path(name_or_path)
    if not p.is_dir():
        p = (Path(root) if root is not None else default_root()) / str(name_or_path)
    return TwoBodyDataset(p)


def ensure_dataset(spec: TwoBodySpec, root: str | os.PathLike[str] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Path, bool]:
    """Make sure ``spec`` exists under ``root``; returns ``(folder, created)``.

    An existing dataset with the same parameters is kept (idempotent); one with the same
    name but other parameters is a clash and is refused, leaving it untouched.
    """
    root = Path(root) if root is not None else default_root()
    final = root / spec.name
    if final.exists():
        existing = TwoBodyDataset(final)
        if existing.params != spec.params():
            diff = {k: (existing.params.get(k), v) for k, v in spec.params().items()
                    if existing.params.get(k) != v}
            raise DatasetExistsError(
                f"dataset {final} exists with other parameters {diff} (existing, requested); "
                "refusing to replace it: move it away or pass --overwrite")
        return final, False
    try:
        return write_dataset(spec, root, progress=progress), True
    except DatasetExistsError:  # another process published it meanwhile: accept it if it is the same
        if final.exists() and TwoBodyDataset(final).params == spec.params():
            return final, False
        raise


def load_named(name: str, root: str | os.PathLike[str] | None = None) -> TwoBodyDataset:
    """Open dataset ``name`` under ``root``; a missing standard-named one is generated first.

    Raises DataError if the driver recorded another content hash for it (see
    ``trainables.common.dataset_hashes``)."""
    root = Path(root) if root is not None else default_root()
    folder = dataset_path(name, root)
    if not folder.exists():
        ensure_dataset(spec_from_name(name), root)
    dataset = TwoBodyDataset(folder)
    check_hash(name, dataset.content_hash, folder)
    return dataset


def dataset_path(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of dataset ``name`` under ``root`` (``$DYNSWEEP_DATASETS`` or ``./datasets`` when
    None); a pure path computation (the folder may not exist)."""
    return (Path(root) if root is not None else default_root()) / name
