"""The two-body family's view of its data: canonical-unit orbits and segment tensors."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .config import TwoBodyConfig
from trainables.common.errors import ConfigError, DataError

from .constants import AU, DU, SAMPLES_PER_ORBIT, TU, VU
from .dataset import OrbitArrays, TwoBodyDataset, dataset_path, load_named, spec_from_name
from .segments import Segments, segment, split_segments

STATE_SCALE = np.array([DU, DU, DU, VU, VU, VU])
"""Divide a physical state (km, km/s) by this to get canonical units."""


def to_canonical(orbits: OrbitArrays) -> OrbitArrays:
    """The same orbits in canonical units (t / TU, states / [DU, VU], acc / AU)."""
    return OrbitArrays(orbit_id=orbits.orbit_id, t=orbits.t / TU, states=orbits.states / STATE_SCALE,
                       acc=orbits.acc / AU)


@dataclass(frozen=True)
class SegmentBatch:
    """Segments as tensors: states ``(N, L, 6)`` canonical, dt ``(N,)`` TU (sample spacing)."""

    states: torch.Tensor
    dt: torch.Tensor

    @staticmethod
    def of(segs: Segments, dtype: torch.dtype, device: torch.device) -> "SegmentBatch":
        return SegmentBatch(states=torch.as_tensor(segs.states, dtype=dtype, device=device),
                            dt=torch.as_tensor(segs.t[:, 1] - segs.t[:, 0], dtype=dtype, device=device))

    def __len__(self) -> int:
        return int(self.states.shape[0])


def dataset_hashes(config: dict) -> dict[str, str]:
    """Content hash of every dataset a trial with ``config`` reads (generated here if missing)."""
    cfg = TwoBodyConfig.from_dict(config)
    return {name: load_named(name, cfg.datasets_root).content_hash for name in dataset_names(cfg)}


def dataset_names(cfg: TwoBodyConfig) -> list[str]:
    """The datasets a trial with ``cfg`` reads: training, validation (when read from its own
    dataset; ``auto`` resolved) and test sets."""
    names = [cfg.train_dataset, *cfg.test_datasets]
    val = val_name(cfg)
    if val is not None:
        names.append(val)
    return names


def val_name(cfg: TwoBodyConfig) -> str | None:
    """The validation dataset ``cfg`` reads, or None when it validates on a share of the training set."""
    if cfg.val_dataset is not None and cfg.val_fraction == 0.0:
        return auto_val_name(cfg.train_dataset) if cfg.val_dataset == "auto" else cfg.val_dataset
    return None


def dataset_paths(config: dict) -> list[Path]:
    """The dataset folders a trial with ``config`` reads (the family's ``dataset_paths`` hook):
    the same names :func:`dataset_hashes` opens, nothing generated or read."""
    cfg = TwoBodyConfig.from_dict(config)
    return [dataset_path(name, cfg.datasets_root) for name in dataset_names(cfg)]


def derived_params(config: dict) -> dict[str, float]:
    """The family's ``derived_params`` hook: ``n_orbits`` (training orbits: from a standard
    dataset name, else the dataset's footer when it exists) and ``segment_ratio`` (segment length / samples per orbit), logged as
    parameters so that tables and plots can use them (``plot heatmap --x n_orbits``)."""
    cfg = TwoBodyConfig.from_dict(config)
    out: dict[str, float] = {"segment_ratio": round(cfg.segment_length / SAMPLES_PER_ORBIT, 6)}
    try:
        out["n_orbits"] = spec_from_name(Path(cfg.train_dataset).name).orbits  # a standard name says it
    except ConfigError:
        try:
            out["n_orbits"] = TwoBodyDataset(dataset_path(cfg.train_dataset, cfg.datasets_root)).n_orbits
        except DataError:
            pass  # not there (yet): the trial will say so
    return out


def auto_val_name(train_name: str) -> str:
    """The validation set that ``val_dataset: auto`` means: same population, min(n, 10) orbits."""
    spec = spec_from_name(train_name)
    return replace(spec, orbits=min(spec.orbits, 10), split="val").name


@dataclass
class TrainingData:
    """Training and validation orbits (canonical) and the training set's radius range (km)."""

    train: OrbitArrays
    val: OrbitArrays | None
    train_dataset: TwoBodyDataset
    val_dataset: TwoBodyDataset | None
    r_range_km: tuple[float, float]

    def train_physical(self) -> OrbitArrays:
        """The training orbits in km, km/s, s, km/s^2."""
        t = self.train
        return OrbitArrays(orbit_id=t.orbit_id, t=t.t * TU, states=t.states * STATE_SCALE, acc=t.acc * AU)

    @staticmethod
    def load(cfg: TwoBodyConfig) -> "TrainingData":
        train_ds = load_named(cfg.train_dataset, cfg.datasets_root)
        physical = train_ds.arrays()
        r = np.linalg.norm(physical.states[..., :3], axis=-1)
        train, val, val_ds = to_canonical(physical), None, None
        val_dataset = val_name(cfg)
        if val_dataset is not None:
            val_ds = load_named(val_dataset, cfg.datasets_root)
            val = to_canonical(val_ds.arrays())
        return TrainingData(train, val, train_ds, val_ds, (float(r.min()), float(r.max())))

    def phase_segments(self, cfg: TwoBodyConfig, segment_length: int, fraction: tuple[float, float],
                       dtype: torch.dtype, device: torch.device) -> tuple[SegmentBatch, SegmentBatch | None]:
        """Training and validation segments of one phase (validation always uses whole orbits)."""
        if cfg.val_fraction > 0.0:
            tr, va = split_segments(self.train, segment_length, cfg.val_fraction, cfg.seed, cfg.split_mode,
                                    fraction)
            val = SegmentBatch.of(va, dtype, device) if len(va) else None
            return SegmentBatch.of(tr, dtype, device), val
        train = SegmentBatch.of(segment(self.train, segment_length, fraction), dtype, device)
        val = SegmentBatch.of(segment(self.val, segment_length), dtype, device) if self.val is not None else None
        return train, val
