"""World-model datasets: train / val / test Parquet files of action-driven sequences.

A dataset is a folder ``<root>/<spec.name>/`` with ``train.parquet``, ``val.parquet`` and
``test.parquet`` (``seqs``, and ``max(2, seqs // 5)`` each for val and test, independent draws),
written with the shared atomic, overwrite-refusing writer. One row per sample: ``seq_id``
(int32), ``step`` (int32), ``t`` (s), ``dt`` (s), ``action`` (int32, applied from this sample to
the next; -1 on the last sample), the state columns of the env and ``p_<name>`` per parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from trainables.common.dataset_hashes import check as check_hash
from trainables.common.errors import ConfigError, DataError
from trainables.common.parquet_store import read_dynsweep_metadata
from trainables.common.paths import default_root
from trainables.common.split_dataset import SPLITS, ensure_splits, write_splits

from .envs import ENVS, SCHEMES, Env, random_actions



@dataclass(frozen=True)
class WorldSpec:
    """env; seqs training sequences of ``steps`` actions (steps + 1 states) at ``dt`` (s; None:
    the env's default); actions held ``hold`` samples; ``scheme`` (RK4, or the symplectic Euler of the
    reference three-body code) with ``substeps`` per sample."""

    env: str = "pendulum"
    seqs: int = 64
    steps: int = 50
    dt: float | None = None
    seed: int = 0
    hold: int = 5
    substeps: int = 20
    scheme: str = "rk4"
    param_ranges: tuple[tuple[str, float, float], ...] = ()
    initial_ranges: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ConfigError(f"env={self.env!r} is not allowed; allowed: {', '.join(ENVS)}")
        if self.seqs < 1 or self.steps < 1 or self.hold < 1 or self.substeps < 1:
            raise ConfigError("seqs, steps, hold and substeps must be >= 1")
        if self.dt is not None and not self.dt > 0:
            raise ConfigError(f"dt={self.dt} must be > 0")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"scheme={self.scheme!r} is not allowed; allowed: {', '.join(SCHEMES)}")
        env = ENVS[self.env]
        for key, given, known in (("param_ranges", self.param_ranges, env.param_ranges),
                                  ("initial_ranges", self.initial_ranges, env.initial_ranges)):
            for name, lo, hi in given:
                if name not in known:
                    raise ConfigError(f"{key}.{name}: not a range of env {self.env}; its {key}: "
                                      f"{', '.join(f'{k} {v}' for k, v in known.items())}")
                if not lo <= hi:
                    raise ConfigError(f"{key}.{name}: [{lo}, {hi}] needs low <= high")

    @property
    def step_dt(self) -> float:
        return float(self.dt if self.dt is not None else ENVS[self.env].dt)

    @property
    def name(self) -> str:
        scheme = "" if self.scheme == "rk4" else "_symplectic"
        ranges = ""
        if self.param_ranges or self.initial_ranges:  # other ranges: another dataset, named by their hash
            text = json.dumps([list(self.param_ranges), list(self.initial_ranges)], sort_keys=True)
            ranges = "_r" + hashlib.sha256(text.encode()).hexdigest()[:8]
        return (f"worlds_{self.env}_{self.seqs}x{self.steps}_dt{self.step_dt:g}_h{self.hold}{scheme}{ranges}"
                f"_seed{self.seed}")

    def split_sizes(self) -> dict[str, int]:
        return {"train": self.seqs, "val": max(2, self.seqs // 5), "test": max(2, self.seqs // 5)}


def schema(env: Env) -> pa.Schema:
    return pa.schema([("seq_id", pa.int32()), ("step", pa.int32()), ("t", pa.float64()), ("dt", pa.float64()),
                      ("action", pa.int32())] + [(c, pa.float64()) for c in env.state_names]
                     + [(f"p_{k}", pa.float64()) for k in env.param_ranges])


def generate(spec: WorldSpec, split: str) -> dict[str, np.ndarray]:
    """Columns of one split (a seeded, independent draw per split)."""
    env, n = ENVS[spec.env], spec.split_sizes()[split]
    rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
    params = env.draw_params(rng, n, {k: (lo, hi) for k, lo, hi in spec.param_ranges})
    actions = random_actions(rng, n, spec.steps, env.n_actions, spec.hold)
    initial = env.draw_initial(rng, n, params, {k: (lo, hi) for k, lo, hi in spec.initial_ranges})
    states = env.rollout(initial, actions, params, spec.step_dt, spec.substeps, spec.scheme)
    if not np.isfinite(states).all():
        raise DataError(f"{spec.name}/{split}: a simulated state is not finite; use a smaller dt")
    t_len = spec.steps + 1
    cols: dict[str, np.ndarray] = {"seq_id": np.repeat(np.arange(n, dtype=np.int32), t_len),
                                   "step": np.tile(np.arange(t_len, dtype=np.int32), n)}
    cols["t"] = cols["step"] * spec.step_dt
    cols["dt"] = np.full(n * t_len, spec.step_dt)
    cols["action"] = np.concatenate([actions, -np.ones((n, 1), int)], 1).reshape(-1).astype(np.int32)
    cols.update({c: states[..., j].reshape(-1) for j, c in enumerate(env.state_names)})
    cols.update({f"p_{k}": np.repeat(v, t_len) for k, v in params.items()})
    return cols


def dataset_path(spec: WorldSpec, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of ``spec``'s splits: ``<root>/<spec.name>`` (root None: ``$DYNSWEEP_DATASETS``
    or ``./datasets``); a pure path computation (it may not exist)."""
    return (Path(root) if root is not None else default_root()) / spec.name


def write(spec: WorldSpec, root: str | os.PathLike[str] | None = None, overwrite: bool = False,
          progress: Callable[[int, int], None] | None = None) -> Path:
    """Write the three splits into ``<root>/<spec.name>/`` (the folder appears whole or not at all);
    ``progress(done, total)`` (sequences) is called after each split."""
    return write_splits(dataset_path(spec, root), spec.split_sizes(), schema(ENVS[spec.env]),
                        lambda split: (generate(spec, split), {"format": "dynsweep.worlds/1", "name": spec.name,
                                                               "split": split, "params": asdict(spec)}),
                        overwrite, progress)


def ensure(spec: WorldSpec, root: str | os.PathLike[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> tuple[Path, bool]:
    """The dataset folder of ``spec``, generated if missing; a same-named one with other parameters is refused."""
    def saved(have: Any) -> Any:  # written before these were parameters: RK4, the env's ranges
        return {"scheme": "rk4", "param_ranges": [], "initial_ranges": [], **have} if isinstance(have, dict) else have

    return ensure_splits(dataset_path(spec, root), asdict(spec), lambda: write(spec, root, progress=progress), saved)


@dataclass
class Sequences:
    """One split in memory: states ``(n, T + 1, d)``, actions ``(n, T)`` int, params ``(n, k)``, dt (s)."""

    states: np.ndarray
    actions: np.ndarray
    params: np.ndarray
    param_names: list[str]
    dt: float
    content_hash: str

    def param_dict(self) -> dict[str, np.ndarray]:
        return {k: self.params[:, j] for j, k in enumerate(self.param_names)}


def load(folder: Path, split: str, env: Env) -> Sequences:
    path = folder / f"{split}.parquet"
    meta = read_dynsweep_metadata(path)
    df = pl.read_parquet(path).sort(["seq_id", "step"])
    n = df["seq_id"].n_unique()
    t_len = df.height // n
    if n * t_len != df.height:
        raise DataError(f"{path}: sequences of unequal length")
    names = list(env.param_ranges)
    check_hash(f"{folder.name}/{split}", meta["content_sha256"], path)
    return Sequences(states=df.select(env.state_names).to_numpy().reshape(n, t_len, env.dim),
                     actions=df["action"].to_numpy().reshape(n, t_len)[:, :-1].copy(),
                     params=df.select([f"p_{k}" for k in names]).to_numpy().reshape(n, t_len, -1)[:, 0].copy(),
                     param_names=names, dt=float(df["dt"][0]), content_hash=str(meta["content_sha256"]))
