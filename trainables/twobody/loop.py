"""The pieces of the two-body training loop that a single trial (:mod:`.train`) and seed
replicates trained together (:mod:`.train_replicates`) share: batches, validation values, the
end-of-training evaluation and the window of figures between two reports."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from .augment import augment
from .config import TwoBodyConfig
from .data import SegmentBatch, TrainingData
from .dataset import OrbitArrays
from .evaluate import evaluate
from .export import export_model
from .field_map import write_field_map
from .metrics import point_errors
from .model import VectorField, integrate


def final_evaluation(field: VectorField, cfg: TwoBodyConfig, data: TrainingData, artifact_dir: Path) -> dict[str, float]:
    """The end-of-training metrics and artefacts of ``field`` (the best-on-validation model): the
    test sets (:func:`.evaluate.evaluate`), the field map, the exported model and the training
    radius range. ``dynsweep evaluate`` calls the same function on a stored checkpoint."""
    field.eval()
    out = evaluate(field, cfg, data.r_range_km, artifact_dir)
    physical = data.train_physical()
    write_field_map(field, physical, data.r_range_km, artifact_dir)
    export_model(field, physical, artifact_dir)
    field.train()
    return {**out, "train_r_min_km": data.r_range_km[0], "train_r_max_km": data.r_range_km[1]}


def sample(segs: SegmentBatch, batch_size: int, generator: torch.Generator) -> SegmentBatch:
    """A random batch without replacement (all segments when there are no more than a batch)."""
    if len(segs) <= batch_size:
        return segs
    idx = torch.randperm(len(segs), generator=generator)[:batch_size].to(segs.states.device)
    return SegmentBatch(states=segs.states[idx], dt=segs.dt[idx])


def draw_batch(segs: SegmentBatch, cfg: TwoBodyConfig, generator: torch.Generator) -> SegmentBatch:
    """One training batch: :func:`sample`, then the config's augmentation, both from ``generator``
    (a replicate draws exactly what its single-seed trial draws)."""
    batch = sample(segs, cfg.batch_size, generator)
    return SegmentBatch(augment(batch.states, cfg.augment, generator), batch.dt)


@torch.no_grad()
def val_loss(field: VectorField, val: SegmentBatch | None, cfg: TwoBodyConfig, loss_fn: Any, step: int) -> float:
    if val is None:
        return math.nan
    pred, _ = integrate(field, val.states[:, 0], val.dt, val.states.shape[1], cfg, step)
    return float(loss_fn(pred, val.states, cfg.mse_weight))


@torch.no_grad()
def val_accel_err(field: VectorField, val: OrbitArrays | None) -> float:
    """Mean acceleration error (%) of the field at every sample of the validation orbits: the
    test sets' headline metric on orbits never trained on, comparable across losses and
    segment lengths (no integration; canonical units, the ratio is unit-free)."""
    if val is None:
        return math.nan
    param = next(field.parameters())
    y = torch.as_tensor(val.states, dtype=param.dtype, device=param.device)
    a_pred = field.acceleration(y).double().cpu().numpy()
    return float(point_errors(a_pred, val.acc, val.states[..., :3])["accel_err_pct"].mean())


def cumulative(counts: list[int]) -> list[int]:
    out, total = [], 0
    for c in counts:
        total += c
        out.append(total)
    return out


class Window:
    """Loss, solver evaluations and wall time since the last report."""

    def __init__(self) -> None:
        self.first_step_s: float | None = None
        self._t_start = time.perf_counter()
        self.restart()

    def restart(self) -> None:
        self.losses: list[float] = []
        self.terms: dict[str, list[float]] = {}
        self.nfe = 0
        self.t0 = time.perf_counter()

    def add(self, loss: float, nfe: int, terms: dict[str, float]) -> None:
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self._t_start
        self.losses.append(loss)
        for key, value in terms.items():
            self.terms.setdefault(key, []).append(value)
        self.nfe += nfe

    def flush(self) -> dict[str, float]:
        n = max(1, len(self.losses))
        out = {"train_loss": sum(self.losses) / n, "nfe_per_step": self.nfe / n,
               "steps_per_s": len(self.losses) / max(time.perf_counter() - self.t0, 1e-9)}
        out.update({key: sum(values) / len(values) for key, values in self.terms.items()})
        if self.first_step_s is not None:
            out["first_step_s"] = self.first_step_s
        return out
