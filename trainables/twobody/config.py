"""The two-body family's configuration: every knob in docs/domain.md, section 1, with defaults.

The defaults are the users' recipe: 10 training orbits; width 64, depth 2, leaky_relu;
``sph_4D_rinv_vel`` features, ``mlp_4D_signed`` head; segments of 18 samples; batch 256;
``percent_error_plus_nmse``; Adam at lr 1e-3 for 2000 steps; dopri5 with rtol 1e-6, atol 1e-8.

Training length is counted in optimiser **steps** (one step = one Adam update on one batch of
``batch_size`` segments, or on all training segments when there are fewer). A phase may give
``epochs`` instead (passes over its training segments), converted to steps when data is known;
every report carries both ``step`` and ``epoch``.

A flat config is one phase built from the top-level ``steps``, ``lr``, ``segment_length`` and
``orbit_fraction``; ``phases`` (a list) replaces it with a curriculum in which each phase may
override any of those four keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from trainables.common.best import check_stopping
from trainables.common.config import FamilyConfig
from trainables.common.errors import ConfigError
from trainables.common.lr import LR_SCHEDULES
from trainables.common.nn import ACTIVATIONS
from trainables.common.replicates import check_replicates, replicate_metric_names

from .augment import AUGMENTS
from .constants import SAMPLES_PER_ORBIT
from .features import FEATURES
from .heads import HEADS, MAGNITUDE_DIRECTION_HEADS
from .losses import LOSSES
from .penalties import TERMS as PENALTY_TERMS
from .penalties import penalty_weights
from .metrics import TEST_METRICS, invariance_pairs, test_set_label
from .segments import SPLIT_MODES, check_segments

MAGNITUDE_RESCALES = ("none", "scalar")
SOLVERS = ("dopri5", "tsit5", "torchdiffeq_dopri5", "rk4")
DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Phase:
    """One curriculum phase; ``None`` means "the top-level value"."""

    steps: int | None = None
    epochs: float | None = None
    lr: float | None = None
    segment_length: int | None = None
    orbit_fraction: tuple[float, float] | None = None


@dataclass(frozen=True)
class TwoBodyConfig(FamilyConfig):
    """All settings of one two-body trial (see the module docstring for the defaults)."""

    seed: int = 0
    replicates: int = 1
    # data
    datasets_root: str | None = None
    train_dataset: str = "complex_TBP_planar_10_train"
    val_dataset: str | None = "auto"
    val_fraction: float = 0.0
    split_mode: str = "split_then_segment"
    test_datasets: list[str] = field(default_factory=lambda: [
        "complex_TBP_planar_1_test", "complex_TBP_planar_10_test", "complex_TBP_planar_100_test",
        "complex_TBP_planar_rotated_10_test", "complex_TBP_planar_mirrored_10_test"])
    # model
    feature: str = "sph_4D_rinv_vel"
    harmonic_order: int = 4
    head: str = "mlp_4D_signed"
    planar_constraint: bool = False
    width: int = 64
    depth: int = 2
    activation: str = "leaky_relu"
    final_activation: str | None = None
    magnitude_bound: float | None = None
    magnitude_rescale: str = "none"
    # loss and optimiser
    loss: str = "percent_error_plus_nmse"
    mse_weight: float = 1.0
    w_attraction: float = 0.0
    w_sign_flip: float = 0.0
    w_l1: float = 0.0
    w_l2: float = 0.0
    w_energy: float = 0.0
    batch_size: int = 256
    steps: int = 2000
    lr: float = 1e-3
    segment_length: int = 18
    orbit_fraction: tuple[float, float] = (0.0, 1.0)
    phases: list[Phase] | None = None
    grad_clip: float | None = None
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    patience: int = 0
    augment: str = "none"
    # integration
    solver: str = "dopri5"
    rtol: float = 1e-6
    atol: float = 1e-8
    rk4_substeps: int = 2
    adjoint: bool = False
    max_solver_steps: int = 2000
    dtype: str = "float32"
    device: str = "auto"
    # reporting and evaluation
    report_every: int = 100
    eval_every_reports: int = 0
    rollout: bool = True

    def __post_init__(self) -> None:
        choices = {"feature": FEATURES, "head": HEADS, "activation": ACTIVATIONS, "loss": LOSSES,
                   "solver": SOLVERS, "lr_schedule": LR_SCHEDULES, "dtype": DTYPES, "device": DEVICES,
                   "split_mode": SPLIT_MODES, "augment": AUGMENTS}
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"config.{key}: {value!r} is not allowed; allowed: {', '.join(sorted(allowed))}")
        if self.final_activation is not None and self.final_activation not in ACTIVATIONS:
            raise ConfigError(f"config.final_activation: {self.final_activation!r} is not allowed; allowed: null, "
                              f"{', '.join(sorted(ACTIVATIONS))}")
        if self.magnitude_rescale not in MAGNITUDE_RESCALES:
            raise ConfigError(f"config.magnitude_rescale: {self.magnitude_rescale!r} is not allowed; allowed: "
                              f"{', '.join(MAGNITUDE_RESCALES)}")
        if self.magnitude_bound is not None and (not self.magnitude_bound > 0 or self.head == "mlp_4D_activation"
                                                 or self.head not in MAGNITUDE_DIRECTION_HEADS):
            raise ConfigError(f"config.magnitude_bound: {self.magnitude_bound!r} needs a value > 0 and a magnitude/"
                              f"direction head (mlp_4D_..., not mlp_4D_activation, whose link is the activation), "
                              f"not head {self.head!r}")
        for term in PENALTY_TERMS:
            if not getattr(self, f"w_{term}") >= 0:
                raise ConfigError(f"config.w_{term}: {getattr(self, f'w_{term}')!r} must be >= 0")
        positive = {"width": self.width, "depth": self.depth, "batch_size": self.batch_size,
                    "report_every": self.report_every, "max_solver_steps": self.max_solver_steps,
                    "rk4_substeps": self.rk4_substeps, "rtol": self.rtol, "atol": self.atol}
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"config.{key}: {value!r} must be > 0")
        if self.adjoint and self.solver == "tsit5":
            raise ConfigError("config.adjoint: the adjoint runs through torchdiffeq, which has no tsit5; use solver "
                              "dopri5, torchdiffeq_dopri5 or rk4 with the adjoint, or adjoint: false")
        if self.min_lr > 0 and self.lr_schedule == "constant":
            raise ConfigError(f"config.min_lr: {self.min_lr!r} has no effect with lr_schedule: constant; "
                              "use lr_schedule: cosine (decays to min_lr), or leave min_lr at 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"config.val_fraction: {self.val_fraction!r} must be in [0, 1)")
        if self.harmonic_order < 1:
            raise ConfigError(f"config.harmonic_order: {self.harmonic_order!r} must be >= 1")
        for i, ph in enumerate(self.curriculum()):
            where = f"config.phases[{i}]" if self.phases else "config"
            if ph.steps is not None and ph.epochs is not None:
                raise ConfigError(f"{where}: give steps or epochs, not both")
            if (ph.steps is not None and ph.steps < 1) or (ph.epochs is not None and not ph.epochs > 0):
                raise ConfigError(f"{where}: steps/epochs must be > 0")
            if not (ph.lr or 0) > 0:
                raise ConfigError(f"{where}.lr: {ph.lr!r} must be > 0")
            check_segments(SAMPLES_PER_ORBIT, int(ph.segment_length or 0),  # zero segments: refused now
                           ph.orbit_fraction or (0.0, 1.0), where=where)
        check_stopping(self.patience, self.min_lr, min(ph.lr or 0.0 for ph in self.curriculum()))
        check_replicates(self.replicates)
        if self.replicates > 1:
            self._check_replicable()

    def _check_replicable(self) -> None:
        """Refuse what replicates trained as one model do not support, naming the key."""
        penalty_key = "loss" if self.loss == "percent_error_with_attraction" else next(
            (f"w_{t}" for t in penalty_weights(self)), None)
        refused = [("patience", self.patience > 0, "each replicate would stop at its own step"),
                   ("adjoint", self.adjoint, "the adjoint's error norm is not per replicate"),
                   ("solver", self.solver == "torchdiffeq_dopri5", "torchdiffeq's error norm is not per replicate; "
                    "use dopri5, tsit5 or rk4"),
                   ("eval_every_reports", self.eval_every_reports > 0, "intermediate test evaluations are not "
                    "aggregated"),
                   (penalty_key, penalty_key is not None, "physics penalties are not computed per replicate")]
        for key, bad, why in refused:
            if bad:
                raise ConfigError(f"config.{key}: {getattr(self, str(key))!r} is not supported with replicates: "
                                  f"{self.replicates} ({why}); use replicates: 1 or change {key}")

    def curriculum(self) -> list[Phase]:
        """The phases with every ``None`` filled from the top-level values."""
        base = Phase(steps=self.steps, lr=self.lr, segment_length=self.segment_length,
                     orbit_fraction=self.orbit_fraction)
        if not self.phases:
            return [base]
        filled = []
        for ph in self.phases:
            steps = ph.steps if (ph.steps is not None or ph.epochs is not None) else self.steps
            filled.append(Phase(steps=steps, epochs=ph.epochs, lr=ph.lr if ph.lr is not None else self.lr,
                                segment_length=ph.segment_length or self.segment_length,
                                orbit_fraction=ph.orbit_fraction or self.orbit_fraction))
        return filled


    def metric_names(self) -> set[str]:
        """Every metric name a trial with this config reports (for validating a sweep's metric)."""
        names = {"step", "epoch", "phase", "total_steps", "lr", "train_loss", "val_loss", "val_accel_err", "steps_per_s",
                 "nfe_per_step", "first_step_s", "best_val_accel_err", "best_step", "stopped_early",
                 "train_r_min_km", "train_r_max_km"}
        terms = penalty_weights(self)
        names |= {f"loss_{t}" for t in terms} | ({"loss_base"} if terms else set())
        for name in self.test_datasets:
            label = test_set_label(name)
            names |= {f"test/{label}/{m}" for m in TEST_METRICS if self.rollout or not m.startswith("rollout")}
        names |= {f"test/{test_set_label(n)}/invariance_gap" for n in invariance_pairs(self.test_datasets)}
        if self.replicates > 1:
            common = {"step", "epoch", "phase", "total_steps", "lr", "steps_per_s", "nfe_per_step", "first_step_s",
                      "train_r_min_km", "train_r_max_km"}
            names = replicate_metric_names(names - common, self.replicates, replicate_spread) | common | {
                "replicate_steps_per_s", "best_replicate"}
        return names

    def with_(self, **changes: Any) -> "TwoBodyConfig":
        return replace(self, **changes)


def replicate_spread(key: str) -> bool:
    """The metrics a replicated trial reports per replicate and with std/min/max: the training and
    validation values (``train_loss``, ``val_loss``, ``val_accel_err``, ``best_val_accel_err``) and
    each test set's mean acceleration error; the others as means only."""
    return key in ("train_loss", "val_loss", "val_accel_err", "best_val_accel_err") or key.endswith("/accel_err_mean")


def phase_steps(phase: Phase, n_segments: int, batch_size: int) -> int:
    """Optimiser steps of ``phase`` given its number of training segments."""
    if phase.epochs is None:
        return int(phase.steps or 0)
    return max(1, math.ceil(phase.epochs * math.ceil(n_segments / batch_size)))
