"""Double-pendulum simulation datasets: one Parquet file per dataset, one row per sample.

Columns ``sim_id, t, theta1, theta2, theta1_dot, theta2_dot, l1, l2, m1, m2, dt`` (int32, then
float64: s, rad, rad, rad/s, rad/s, m, m, kg, kg, s); rows sorted by ``sim_id`` then ``t``,
ZSTD row groups of 65,536 rows, written through the shared
:class:`~trainables.common.parquet_store.BufferedParquetWriter` (atomic, refuses to overwrite,
content hash in the footer). Angles are stored unwrapped (continuous in time).

Simulation ``i`` draws its initial condition (and, with ``random_params``, its lengths and
masses) from ``numpy.random.default_rng([seed, i])``, so a dataset does not depend on how many
processes generated it. Simulations are generated in chunks of :data:`CHUNK_SIMS` by a process
pool of the allotted cores.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from trainables.common.dataset_hashes import check as check_hash
from trainables.common.errors import ConfigError, DataError, DatasetExistsError
from trainables.common.parquet_store import BufferedParquetWriter, file_hash, read_dynsweep_metadata
from trainables.common.paths import default_root

from .physics import Params, energy, integrate_reference, integrate_verlet

FORMAT = "dynsweep.pendulum/1"
STATE_COLUMNS = ("theta1", "theta2", "theta1_dot", "theta2_dot")
PARAM_COLUMNS = ("l1", "l2", "m1", "m2")
SCHEMA = pa.schema([("sim_id", pa.int32()), ("t", pa.float64())]
                   + [(c, pa.float64()) for c in STATE_COLUMNS + PARAM_COLUMNS + ("dt",)])
UNITS = {"t,dt": "s", "theta1,theta2": "rad (unwrapped)", "theta1_dot,theta2_dot": "rad/s", "l1,l2": "m",
         "m1,m2": "kg"}
INTEGRATORS = ("dop853", "rk45", "verlet")
ROW_GROUP = 65_536
CHUNK_SIMS = 16
PARAM_RANGE = (0.5, 1.5)
"""With ``random_params``: l1, l2 (m), m1, m2 (kg) uniform in this range."""
ENERGY_TOLERANCE = {"dop853": 1e-6, "rk45": 1e-6, "verlet": 1e-2}
"""Largest relative energy error (|E - E0| / energy scale) a generated simulation may have."""
ENERGY_KEY = "dynsweep.max_energy_error_rel"
"""Footer key: the largest relative energy error over the file's simulations."""


def allotted_cores() -> int:
    """Cores this process may use: its thread cap (set per trial by dynsweep) or its CPU affinity."""
    cap = os.environ.get("OMP_NUM_THREADS")
    if cap and cap.isdigit() and int(cap) > 0:
        return int(cap)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class PendulumSpec:
    """What a simulation dataset is made of; equal specs give identical data.

    sims: number of simulations; t_end: simulated span (s); dt: sample spacing (s);
    theta_max_deg: initial angles uniform in [-theta_max, theta_max]; omega_max: initial
    angular velocities uniform in [-omega_max, omega_max] rad/s; random_params: draw l1, l2,
    m1, m2 per simulation from :data:`PARAM_RANGE` (else 1 m, 1 kg); integrator: dop853 |
    rk45 (scipy, rtol = atol = 1e-10) | verlet (symplectic, ``substeps`` steps per sample).
    """

    sims: int = 64
    t_end: float = 20.0
    dt: float = 0.01
    seed: int = 0
    random_params: bool = False
    integrator: str = "dop853"
    theta_max_deg: float = 135.0
    omega_max: float = 0.0
    substeps: int = 10

    def __post_init__(self) -> None:
        if self.integrator not in INTEGRATORS:
            raise ConfigError(f"integrator={self.integrator!r} is not allowed; allowed: {', '.join(INTEGRATORS)}")
        if self.sims < 1 or self.substeps < 1:
            raise ConfigError(f"sims={self.sims} and substeps={self.substeps} must be >= 1")
        if not (self.dt > 0 and self.t_end >= self.dt):
            raise ConfigError(f"dt={self.dt} must be > 0 and t_end={self.t_end} >= dt")
        if not (0 <= self.theta_max_deg <= 180 and self.omega_max >= 0):
            raise ConfigError(f"theta_max_deg={self.theta_max_deg} must be in [0, 180] and omega_max >= 0")

    @property
    def samples(self) -> int:
        """Samples per simulation (t = 0, dt, ..., t_end)."""
        return int(math.floor(self.t_end / self.dt + 1e-9)) + 1

    @property
    def name(self) -> str:
        """E.g. ``dpend_64x20s_dt0.01_dop853_seed0`` (``_rp`` with random parameters; non-default
        initial-condition ranges are spelled out)."""
        extra = "_rp" if self.random_params else ""
        if self.theta_max_deg != 135.0 or self.omega_max != 0.0:
            extra += f"_th{self.theta_max_deg:g}_w{self.omega_max:g}"
        if self.integrator == "verlet" and self.substeps != 10:
            extra += f"_sub{self.substeps}"
        return f"dpend_{self.sims}x{self.t_end:g}s_dt{self.dt:g}_{self.integrator}{extra}_seed{self.seed}"

    def params(self) -> dict[str, Any]:
        return asdict(self)


def draw(spec: PendulumSpec, sim_id: int) -> tuple[np.ndarray, Params]:
    """Initial state ``(4,)`` rad, rad/s and parameters of simulation ``sim_id``."""
    rng = np.random.default_rng([spec.seed, sim_id])
    theta = np.radians(spec.theta_max_deg) * rng.uniform(-1, 1, 2)
    omega = spec.omega_max * rng.uniform(-1, 1, 2)
    lm = rng.uniform(*PARAM_RANGE, 4) if spec.random_params else np.ones(4)
    return np.concatenate([theta, omega]), Params(l1=lm[0], l2=lm[1], m1=lm[2], m2=lm[3])


def simulate_chunk(spec: PendulumSpec, first: int, count: int) -> dict[str, np.ndarray]:
    """Columns of simulations ``first .. first + count - 1`` (rows sorted by sim, then time)."""
    t = np.arange(spec.samples) * spec.dt
    drawn = [draw(spec, i) for i in range(first, first + count)]
    states0 = np.stack([s for s, _ in drawn])
    params = Params(*(np.array([getattr(p, k) for _, p in drawn]) for k in PARAM_COLUMNS))
    if spec.integrator == "verlet":
        states = integrate_verlet(states0, t, params, spec.substeps)  # (count, samples, 4), all at once
    else:
        method = "DOP853" if spec.integrator == "dop853" else "RK45"
        states = np.stack([integrate_reference(s0, t, Params(*(float(getattr(params, k)[j]) for k in PARAM_COLUMNS)),
                                               method=method) for j, s0 in enumerate(states0)])
    per_sim = Params(*(np.asarray(getattr(params, k))[:, None] for k in PARAM_COLUMNS))
    e = energy(states, per_sim)
    drift = float((np.abs(e - e[:, :1]) / per_sim.energy_scale()).max())
    if drift > ENERGY_TOLERANCE[spec.integrator]:
        raise DataError(f"simulations {first}..{first + count - 1}: relative energy error {drift:.2e} exceeds "
                        f"{ENERGY_TOLERANCE[spec.integrator]:g} ({spec.integrator}); use a smaller dt or more substeps")
    n = spec.samples
    cols: dict[str, np.ndarray] = {"sim_id": np.repeat(np.arange(first, first + count, dtype=np.int32), n),
                                   "t": np.tile(t, count)}
    flat = states.reshape(count * n, 4)
    cols.update({c: flat[:, j] for j, c in enumerate(STATE_COLUMNS)})
    cols.update({c: np.repeat(np.asarray(getattr(params, c), float), n) for c in PARAM_COLUMNS})
    cols["dt"] = np.full(count * n, spec.dt)
    cols["_energy_drift"] = np.array([drift])
    return cols


def _chunks(spec: PendulumSpec) -> list[tuple[int, int]]:
    return [(f, min(CHUNK_SIMS, spec.sims - f)) for f in range(0, spec.sims, CHUNK_SIMS)]


def _generate(spec: PendulumSpec, workers: int) -> Iterator[dict[str, np.ndarray]]:
    chunks = _chunks(spec)
    if workers <= 1 or len(chunks) == 1:
        yield from (simulate_chunk(spec, f, c) for f, c in chunks)
        return
    # spawn: safe in any parent (a Ray worker, a process with torch threads); results come in order
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(simulate_chunk, [spec] * len(chunks), *zip(*chunks))


def write_dataset(spec: PendulumSpec, path: str | os.PathLike[str], overwrite: bool = False,
                  workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> str:
    """Generate ``spec`` into the Parquet file ``path``; returns its content hash.

    Raises:
        DatasetExistsError: ``path`` exists and ``overwrite`` is false (before any work).
    """
    meta = {"format": FORMAT, "name": spec.name, "params": spec.params(), "units": UNITS}
    workers = allotted_cores() if workers is None else workers
    drift, done = 0.0, 0
    writer = BufferedParquetWriter(path, SCHEMA, ROW_GROUP, meta, overwrite=overwrite)
    try:
        for cols in _generate(spec, workers):
            drift = max(drift, float(cols.pop("_energy_drift")[0]))
            writer.write(cols)
            done += len(np.unique(cols["sim_id"]))
            if progress:
                progress(done, spec.sims)
    except BaseException:
        writer.abort()
        raise
    return writer.close({ENERGY_KEY: f"{drift:.3e}"})


class PendulumDataset:
    """A simulation file opened lazily (only its footer is read).

    Raises (on construction):
        DataError: the file is missing, corrupt, or lacks a column of :data:`SCHEMA`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"dataset {self.path} does not exist (generate it with `dynsweep data pendulum`)")
        try:
            self.meta: dict[str, Any] = read_dynsweep_metadata(self.path)
        except DataError:  # a user's own file with the right columns is fine
            self.meta = {}
        self.content_hash = file_hash(self.path)
        columns = set(pl.scan_parquet(self.path).collect_schema().names())
        missing = [c for c in SCHEMA.names if c not in columns]
        if missing:
            raise DataError(f"{self.path}: missing column(s) {', '.join(missing)}; a pendulum dataset has "
                            f"{', '.join(SCHEMA.names)}; it has {', '.join(sorted(columns))}")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.meta.get("params", {}))

    def scan(self) -> pl.LazyFrame:
        """All rows as a Polars lazy frame (filters are pushed down to the row groups)."""
        return pl.scan_parquet(self.path)

    def sim_lengths(self) -> pl.DataFrame:
        """``sim_id, rows`` for every simulation, sorted by ``sim_id`` (reads one column)."""
        return self.collect(self.scan().group_by("sim_id").agg(pl.len().alias("rows")).sort("sim_id"))

    def simulation(self, sim_id: int) -> pl.DataFrame:
        """Every row of simulation ``sim_id``, in time order (only its row groups are read).

        Raises:
            DataError: no simulation with that id (the message gives the ids there are).
        """
        return self.window(sim_id, -math.inf, math.inf)

    def window(self, sim_id: int, t_start: float, t_end: float) -> pl.DataFrame:
        """The rows of simulation ``sim_id`` with ``t_start <= t < t_end`` (s), in time order.

        Raises:
            DataError: no simulation with that id, or no sample in the window.
        """
        rows = self.collect(self.scan().filter((pl.col("sim_id") == sim_id) & (pl.col("t") >= t_start)
                                               & (pl.col("t") < t_end)).sort("t"))
        if rows.height == 0:
            ids = self.sim_lengths()["sim_id"]
            if sim_id not in set(ids.to_list()):
                raise DataError(f"{self.path}: no simulation {sim_id}; its ids are {ids.min()}..{ids.max()} "
                                f"({len(ids)} simulations)")
            raise DataError(f"{self.path}: simulation {sim_id} has no sample with {t_start:g} <= t < {t_end:g} s")
        return rows

    def collect(self, lf: pl.LazyFrame) -> pl.DataFrame:
        try:
            return lf.collect()
        except (pl.exceptions.ComputeError, OSError) as err:
            raise DataError(f"{self.path}: cannot be read (truncated or corrupt?): {err}") from None


def dataset_path(spec: PendulumSpec, root: str | os.PathLike[str] | None = None) -> Path:
    """Where the dataset ``spec`` describes lives: ``<root>/<spec.name>.parquet`` (root None:
    ``$DYNSWEEP_DATASETS`` or ``./datasets``); a pure path computation (it may not exist)."""
    return (Path(root) if root is not None else default_root()) / f"{spec.name}.parquet"


def training_path(dataset: str | None, spec: PendulumSpec, root: str | os.PathLike[str] | None) -> Path:
    """The file a trial reads: ``dataset`` (a path to an existing file, else a name under the
    root), or the one ``spec`` describes when ``dataset`` is None. Generates and reads nothing."""
    if dataset is None:
        return dataset_path(spec, root)
    path = Path(dataset)
    if path.is_file():
        return path
    base = Path(root) if root is not None else default_root()
    return base / (dataset if dataset.endswith(".parquet") else f"{dataset}.parquet")


def ensure_dataset(spec: PendulumSpec, root: str | os.PathLike[str] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[Path, bool]:
    """Make sure ``<root>/<spec.name>.parquet`` exists; returns ``(path, created)``.

    An existing file with the same parameters is kept; one with other parameters is refused
    and left untouched. Two trials generating the same dataset at once both end up reading
    the one that was published first.
    """
    path = dataset_path(spec, root)
    if not path.exists():
        try:
            write_dataset(spec, path, progress=progress)
            return path, True
        except DatasetExistsError:
            pass  # published by another process meanwhile: check it below
    existing = PendulumDataset(path)
    if existing.params != spec.params():
        diff = {k: (existing.params.get(k), v) for k, v in spec.params().items() if existing.params.get(k) != v}
        raise DatasetExistsError(f"dataset {path} exists with other parameters {diff} (existing, requested); "
                                 "refusing to replace it: move it away or pass --overwrite")
    return path, False


def open_for_training(dataset: str | None, spec: PendulumSpec, root: str | None) -> PendulumDataset:
    """The dataset a trial reads: the file ``dataset`` (a path, or a name under the root), or
    the one ``spec`` describes, generated on first use. Checks the driver's content hash."""
    if dataset is None:
        path, _ = ensure_dataset(spec, root)
    else:
        path = training_path(dataset, spec, root)
    ds = PendulumDataset(path)
    check_hash(path.stem, ds.content_hash, path)
    return ds
