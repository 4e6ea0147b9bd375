"""The double-pendulum family's configuration (docs/domain.md, section 2), with defaults.

Data: either ``dataset`` (a Parquet file with the pendulum schema: a path, or a name under
the datasets folder) or, by default, the dataset that ``sims``, ``t_end``, ``dt``,
``data_seed``, ``random_params``, ``integrator``, ``theta_max_deg`` and ``omega_max`` describe,
generated on first use. Simulations are split into train / validation / test by
``seed`` (never a window of one simulation in two splits).

Training length is counted in optimiser steps (one batch of ``batch_size`` windows); a report
every ``report_every`` steps carries the validation loss, drives ReduceLROnPlateau and early
stopping (``patience`` reports without improvement), and keeps the best-on-validation model,
which is the one evaluated at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables.common.best import check_stopping
from trainables.common.config import FamilyConfig, require_at_least, require_choice, require_positive
from trainables.common.errors import ConfigError

from .dataset import INTEGRATORS, PendulumSpec, open_for_training, training_path
from .model import CELLS, TARGETS

DEVICES = ("auto", "cpu", "cuda")
STATE_NAMES = ("theta1", "theta2", "omega1", "omega2")


@dataclass(frozen=True)
class PendulumConfig(FamilyConfig):
    """All settings of one double-pendulum trial (see the module docstring)."""

    seed: int = 0
    # data
    datasets_root: str | None = None
    dataset: str | None = None
    sims: int = 64
    t_end: float = 20.0
    dt: float = 0.01
    data_seed: int = 0
    random_params: bool = False
    integrator: str = "dop853"
    theta_max_deg: float = 135.0
    omega_max: float = 0.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    stream_rows: int = 500_000
    # windows and model
    window: int = 20
    predict_steps: int = 1
    target: str = "delta"
    rnn: str = "lstm"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    # optimiser
    batch_size: int = 256
    steps: int = 3000
    lr: float = 1e-3
    grad_clip: float | None = 1.0
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    patience: int = 10
    min_lr: float = 0.0
    report_every: int = 100
    val_windows: int = 4096
    # evaluation
    horizons: list[int] = field(default_factory=lambda: [10, 100, 1000])
    eval_sims: int = 8
    vpt_threshold: float = 0.5
    lyapunov_sims: int = 2
    lyapunov_t_end: float = 30.0
    lyapunov_tau: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        require_choice(self, {"rnn": CELLS, "target": TARGETS, "device": DEVICES, "integrator": INTEGRATORS})
        require_at_least(self, ("sims", "window", "predict_steps", "hidden", "layers", "batch_size", "steps",
                                "report_every", "val_windows", "stream_rows", "eval_sims",
                                "plateau_patience"))
        check_stopping(self.patience, self.min_lr, self.lr)
        require_positive(self, ("lr", "dt", "t_end", "lyapunov_t_end", "lyapunov_tau", "vpt_threshold"))
        for key in ("val_fraction", "test_fraction", "dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"config.{key}: {getattr(self, key)!r} must be in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"config.plateau_factor: {self.plateau_factor!r} must be in (0, 1)")
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"config.horizons: {self.horizons!r} must be a non-empty list of steps >= 1")
        if self.dataset is None:
            samples = self.data_spec().samples
            if self.window + self.predict_steps > samples:
                raise ConfigError(f"config.window: {self.window} + predict_steps {self.predict_steps} exceeds the "
                                  f"{samples} samples of a simulation (t_end={self.t_end:g} s, dt={self.dt:g} s); "
                                  f"use window <= {samples - self.predict_steps} or a longer t_end")

    def data_spec(self) -> PendulumSpec:
        """The generated dataset these settings describe (when ``dataset`` is not given)."""
        try:
            return PendulumSpec(sims=self.sims, t_end=self.t_end, dt=self.dt, seed=self.data_seed,
                                random_params=self.random_params, integrator=self.integrator,
                                theta_max_deg=self.theta_max_deg, omega_max=self.omega_max)
        except ConfigError as err:
            raise ConfigError(f"config: {err}") from None


    def metric_names(self) -> set[str]:
        """Every metric a trial reports (the last report adds the ``test/`` ones)."""
        names = {"step", "epoch", "total_steps", "lr", "train_loss", "val_loss", "best_val_loss", "best_step",
                 "steps_per_s", "windows_per_s", "stopped_early"}
        names |= {f"test/one_step_rmse_{s}" for s in STATE_NAMES} | {"test/one_step_nrmse"}
        names |= {f"test/rollout_nrmse_h{h}" for h in self.horizons}
        names |= {"test/vpt_s", "test/vpt_lyapunov", "test/lyapunov_true", "test/lyapunov_model",
                  "test/lyapunov_ratio", "test/energy_drift_rel", "test/energy_drift_rel_true"}
        return names


def dataset_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    """``{dataset name: content hash}`` of the dataset a trial with ``config`` reads (generated if missing)."""
    cfg = PendulumConfig.from_dict(config)
    ds = open_for_training(cfg.dataset, cfg.data_spec(), cfg.datasets_root)
    return {ds.path.stem: ds.content_hash}


def dataset_paths(config: Mapping[str, Any]) -> list[Path]:
    """The file a trial with ``config`` reads (the family's ``dataset_paths`` hook): the one
    :func:`dataset_hashes` opens, computed without generating or reading it."""
    cfg = PendulumConfig.from_dict(config)
    return [training_path(cfg.dataset, cfg.data_spec(), cfg.datasets_root)]
