"""The learned time-stepper family's configuration (docs/domain.md, section 5), with defaults.

System: ``system`` ``kepler`` (two bodies, eccentricity ``e``, masses 1 and ``m2``) or
``triple`` (an eccentric inner pair plus a third body of mass ``m3`` on a wide orbit). The
network (``width`` x ``depth``, ``activation``) maps ``features`` (``analytic`` or ``history`` of
``history_len`` states) to log dt, offset by ``dt_init`` (in orbital periods).

Training: ``epochs`` of phase 1 (``collect_steps`` accepted steps along the persisting
trajectory; a step whose relative energy error exceeds ``energy_threshold`` trains the network
on that step and retries, at most ``max_retries`` times, then the trial fails with class
``retry_cap``; ``max_retries: null`` retrains without a cap as the reference code does, which can
run forever on a step the network cannot learn: the cap is the default as a deliberate safety)
and phase 2 (minibatches of ``batch_size`` accepted states, drawn ``with_replacement`` or
``without_replacement`` (passes over a shuffled order, ``phase2_sampling``), until all pass, at
most ``phase2_max_iters`` iterations; ``converged`` = 1 when they all passed). The band loss pushes each step's energy error into
``[band_low * energy_threshold, energy_threshold]``.

Evaluation: ``eval_orbits`` orbits with the learned stepper (no training), then the fixed-dt
and r^(3/2) baselines tuned to the same maximum energy error.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.common.config import FamilyConfig, require_at_least, require_choice, require_positive
from trainables.common.errors import ConfigError
from trainables.common.nn import ACTIVATIONS

from .features import FEATURES

SYSTEMS = ("kepler", "triple")
SAMPLING = ("with_replacement", "without_replacement")


@dataclass(frozen=True)
class StepperConfig(FamilyConfig):
    """All settings of one time-stepper trial (see the module docstring)."""

    seed: int = 0
    system: str = "kepler"
    e: float = 0.5
    m2: float = 1e-3
    m3: float = 0.1
    features: str = "analytic"
    history_len: int = 4
    width: int = 32
    depth: int = 2
    activation: str = "tanh"
    lr: float = 3e-3
    dt_init: float = 1e-3
    energy_threshold: float = 2e-4
    band_low: float = 0.1
    max_retries: int | None = 200
    phase2_sampling: str = "with_replacement"
    epochs: int = 6
    collect_steps: int = 300
    batch_size: int = 256
    phase2_max_iters: int = 300
    eval_orbits: float = 2.0
    report_every: int = 1

    def __post_init__(self) -> None:
        require_choice(self, {"system": SYSTEMS, "features": FEATURES, "activation": ACTIVATIONS,
                              "phase2_sampling": SAMPLING})
        if not 0.0 <= self.e < 1.0:
            raise ConfigError(f"config.e: {self.e!r} must be in [0, 1)")
        if self.m2 < 0 or self.m3 < 0:
            raise ConfigError("config.m2 and config.m3 must be >= 0")
        require_at_least(self, ("history_len", "width", "depth", "epochs", "collect_steps",
                                "batch_size", "phase2_max_iters", "report_every"))
        if self.max_retries is not None and self.max_retries < 1:
            raise ConfigError(f"config.max_retries: {self.max_retries!r} must be >= 1, or null for no cap")
        require_positive(self, ("lr", "dt_init", "energy_threshold", "eval_orbits"))
        if not 0.0 < self.band_low < 1.0:
            raise ConfigError(f"config.band_low: {self.band_low!r} must be in (0, 1)")


    def metric_names(self) -> set[str]:
        return {"step", "epoch", "total_steps", "band_loss", "acceptance_rate", "retrain_iterations",
                "phase2_iterations", "accepted_steps", "mean_dt_train", "steps_per_s", "converged", "epoch_s",
                "test/energy_error", "test/final_energy_error", "test/mean_dt", "test/steps_per_orbit",
                "test/fixed_dt", "test/fixed_steps_per_orbit", "test/r32_eta", "test/r32_steps_per_orbit",
                "test/fixed_energy_error", "test/r32_energy_error",
                "test/steps_ratio_fixed", "test/steps_ratio_r32"}
