"""Frame datasets: the world-model sequences (:mod:`trainables.worldmodels.data`) with a rendered
frame per sample (:mod:`.render`), as train / val / test Parquet files.

A dataset is a folder ``<root>/<spec.name>/`` with ``train.parquet``, ``val.parquet`` and
``test.parquet`` written with the shared atomic, overwrite-refusing writer (content hash in the
footer). Each row is a world-model sample (``seq_id``, ``step``, ``t`` (s), ``dt`` (s),
``action``, the env's state columns, ``p_<name>``) plus ``frame``: ``channels * size * size``
bytes, the ``uint8`` frame in ``(C, H, W)`` order, row 0 at the top. The simulation is the
world-model family's (same env, seed, dt, actions), so a frame dataset and the world-model dataset
of the same parameters hold the same states.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trainables.common.dataset_hashes import check as check_hash
from trainables.common.errors import ConfigError, DataError
from trainables.common.parquet_store import read_dynsweep_metadata
from trainables.common.paths import default_root
from trainables.common.split_dataset import ensure_splits, write_splits
from trainables.worldmodels.data import WorldSpec, generate
from trainables.worldmodels.data import schema as world_schema
from trainables.worldmodels.envs import ENVS

from .render import COLOUR_MODES, VIEWS, project, radius, render

FORMAT = "dynsweep.frames/1"
MIN_SIZE = 16


@dataclass(frozen=True)
class FrameSpec:
    """The world-model dataset ``world`` rendered as ``size`` x ``size`` frames in ``colour`` (grey, rgb)."""

    world: WorldSpec = field(default_factory=lambda: WorldSpec(steps=60))
    size: int = 64
    colour: str = "grey"

    def __post_init__(self) -> None:
        if self.world.env not in VIEWS:
            raise ConfigError(f"env={self.world.env!r} cannot be rendered; allowed: {', '.join(VIEWS)}")
        if self.size < MIN_SIZE or self.size % 8:
            raise ConfigError(f"size={self.size} must be a multiple of 8 and >= {MIN_SIZE} (e.g. 32, 64)")
        if self.colour not in COLOUR_MODES:
            raise ConfigError(f"colour={self.colour!r} is not allowed; allowed: {', '.join(COLOUR_MODES)}")

    @property
    def channels(self) -> int:
        return COLOUR_MODES[self.colour]

    @property
    def name(self) -> str:
        return f"frames_{self.world.name.removeprefix('worlds_')}_{self.size}px_{self.colour}"

    def param_max(self) -> dict[str, float]:
        """The largest value of each physical parameter the dataset can draw (sets the field of view)."""
        ranges = {**ENVS[self.world.env].param_ranges, **{k: (lo, hi) for k, lo, hi in self.world.param_ranges}}
        return {k: float(hi) for k, (_, hi) in ranges.items()}


def schema(spec: FrameSpec) -> pa.Schema:
    n = spec.channels * spec.size * spec.size
    return world_schema(ENVS[spec.world.env]).append(pa.field("frame", pa.binary(n)))


def frame_columns(spec: FrameSpec, split: str) -> dict[str, np.ndarray]:
    """Columns of one split: the world-model split's columns plus each sample's frame bytes (and
    ``out_of_view``, not stored: whether the object reaches beyond the frame's edge)."""
    cols = generate(spec.world, split)
    env = ENVS[spec.world.env]
    n, t_len = int(cols["seq_id"].max()) + 1, spec.world.steps + 1
    states = np.stack([cols[c] for c in env.state_names], -1).reshape(n, t_len, env.dim)
    params = {k: cols[f"p_{k}"].reshape(n, t_len)[:, 0] for k in env.param_ranges}
    frames = render(spec.world.env, states, params, spec.param_max(), spec.size, spec.colour)
    flat = frames.reshape(n * t_len, -1)
    cols["frame"] = np.array([row.tobytes() for row in flat], dtype=object)
    where = project(spec.world.env, states, {k: v[:, None] for k, v in params.items()}, spec.param_max(), spec.size)
    margin = radius(spec.size)
    cols["out_of_view"] = ~((where > margin) & (where < spec.size - margin)).all(-1).reshape(-1)
    return cols


def dataset_path(spec: FrameSpec, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of ``spec``'s splits (a pure path computation; it may not exist)."""
    return (Path(root) if root is not None else default_root()) / spec.name


def _params(spec: FrameSpec) -> dict[str, object]:
    return json.loads(json.dumps(asdict(spec)))


def write(spec: FrameSpec, root: str | os.PathLike[str] | None = None, overwrite: bool = False,
          progress: Callable[[int, int], None] | None = None) -> Path:
    """Render and write the three splits into ``<root>/<spec.name>/`` (the folder appears whole or
    not at all); ``progress(done, total)`` (sequences) after each split. The footer says how many
    frames show their object only in part or not at all (``out_of_view``: outside the field of view)."""
    def split_data(split: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        cols = frame_columns(spec, split)
        outside = int(cols.pop("out_of_view").sum())
        return cols, {"format": FORMAT, "name": spec.name, "split": split, "params": _params(spec),
                      "frame": {"dtype": "uint8", "layout": "CHW", "channels": spec.channels, "size": spec.size},
                      "out_of_view": outside}

    return write_splits(dataset_path(spec, root), spec.world.split_sizes(), schema(spec), split_data, overwrite,
                        progress, row_group_size=4096)


def ensure(spec: FrameSpec, root: str | os.PathLike[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> tuple[Path, bool]:
    """The dataset folder of ``spec``, written if missing; a same-named one with other parameters is refused."""
    return ensure_splits(dataset_path(spec, root), _params(spec), lambda: write(spec, root, progress=progress))


@dataclass
class Frames:
    """One split in memory: frames ``(n, T + 1, C, S, S)`` uint8, states ``(n, T + 1, d)``, actions
    ``(n, T)`` int, params ``{name: (n,)}``, dt (s)."""

    frames: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    params: dict[str, np.ndarray]
    dt: float
    content_hash: str
    spec: FrameSpec


def spec_of(folder: Path) -> FrameSpec:
    """The :class:`FrameSpec` a frame dataset folder was written with (from its train split's footer).

    Raises:
        DataError: the folder holds no frame dataset.
    """
    path = folder / "train.parquet"
    meta = read_dynsweep_metadata(path)
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: not a frame dataset (format {meta.get('format')!r}, expected {FORMAT!r}); "
                        "make one with `dynsweep data frames`")
    p = dict(meta["params"])
    world = dict(p.pop("world"))
    world["param_ranges"] = tuple(tuple(r) for r in world.get("param_ranges", ()))
    world["initial_ranges"] = tuple(tuple(r) for r in world.get("initial_ranges", ()))
    return FrameSpec(world=WorldSpec(**world), **p)


def load(folder: Path, split: str) -> Frames:
    """One split of a frame dataset (content hash checked)."""
    path = folder / f"{split}.parquet"
    meta = read_dynsweep_metadata(path)
    spec = spec_of(folder)
    env = ENVS[spec.world.env]
    table = pq.read_table(path).sort_by([("seq_id", "ascending"), ("step", "ascending")])
    n = len(set(table.column("seq_id").to_pylist()))
    t_len = table.num_rows // n
    if n * t_len != table.num_rows:
        raise DataError(f"{path}: sequences of unequal length")
    check_hash(f"{folder.name}/{split}", meta["content_sha256"], path)
    frames = np.frombuffer(b"".join(table.column("frame").to_pylist()), dtype=np.uint8).copy()
    frames = frames.reshape(n, t_len, spec.channels, spec.size, spec.size)
    states = np.stack([table.column(c).to_numpy() for c in env.state_names], -1).reshape(n, t_len, env.dim)
    actions = table.column("action").to_numpy().reshape(n, t_len)[:, :-1].copy()
    params = {k: table.column(f"p_{k}").to_numpy().reshape(n, t_len)[:, 0].copy() for k in env.param_ranges}
    return Frames(frames, states, actions, params, float(table.column("dt")[0].as_py()), str(meta["content_sha256"]),
                  spec)
