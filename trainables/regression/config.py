"""The regression family's configuration (docs/domain.md, section 3), with defaults.

``dataset``: a Parquet file (a path, or a name under the datasets folder); by default the demo
(``demo_rows``, ``outlier_fraction``, ``noise``, ``data_seed``), generated on first use.
``inputs`` / ``outputs`` name the columns; ``clean_outputs`` optionally names columns with a
noise-free truth to score against (the demo's ``y_clean``; default: the demo's, else none).
Rows are split by a seeded permutation; ``validate_on_train: true`` reproduces the users' old
tool (training and validation on the same rows) and must be asked for.

``widths``: hidden widths, a list (``[128, 128]``) or a string (``"128x128"``, which sweeps
as a categorical). ``scale`` is the robust loss's c in normalised output units (outputs are
standardised with the training rows' mean and std).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables.common.best import check_stopping
from trainables.common.config import FamilyConfig, require_at_least, require_choice, require_positive
from trainables.common.errors import ConfigError
from trainables.common.parquet_store import file_hash

from .data import DemoSpec, check_columns, dataset_path, resolve
from .losses import LOSSES
from .model import MODELS, SKIPS

ACTIVATIONS = ("gelu", "silu", "relu", "tanh")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class RegressionConfig(FamilyConfig):
    """All settings of one regression trial (see the module docstring)."""

    seed: int = 0
    datasets_root: str | None = None
    dataset: str | None = None
    demo_rows: int = 4000
    outlier_fraction: float = 0.15
    noise: float = 0.05
    data_seed: int = 0
    inputs: list[str] = field(default_factory=lambda: ["x1", "x2", "x3"])
    outputs: list[str] = field(default_factory=lambda: ["y"])
    clean_outputs: list[str] | None = None
    val_fraction: float = 0.2
    validate_on_train: bool = False
    # model
    model: str = "residual"
    widths: list[int] | str = "128x128x128"
    activation: str = "gelu"
    skip: str = "auto"
    # loss and optimiser
    loss: str = "mse"
    loss_schedule: list[tuple[int, str]] | None = None
    scale: float = 1.0
    w_recon: float = 1.0
    w_l1: float = 0.0
    w_l2: float = 0.0
    w_grad: float = 0.0
    batch_size: int = 4096
    steps: int = 2000
    lr: float = 1e-3
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 0.0
    patience: int = 0
    report_every: int = 100
    device: str = "auto"

    def __post_init__(self) -> None:
        require_choice(self, {"model": MODELS, "skip": SKIPS, "loss": LOSSES, "activation": ACTIVATIONS,
                              "device": DEVICES})
        require_at_least(self, ("batch_size", "steps", "report_every", "demo_rows", "plateau_patience"))
        require_positive(self, ("lr", "scale"))
        check_stopping(self.patience, self.min_lr, self.lr)
        if self.loss_schedule is not None:
            starts = [s for s, _ in self.loss_schedule]
            if not starts or starts[0] != 0 or starts != sorted(set(starts)):
                raise ConfigError(f"config.loss_schedule: {self.loss_schedule!r} must be [[0, loss], [step, loss], ...] "
                                  "with increasing steps, the first at 0")
            bad = [name for _, name in self.loss_schedule if name not in LOSSES]
            if bad:
                raise ConfigError(f"config.loss_schedule: {bad[0]!r} is not allowed; allowed: {', '.join(LOSSES)}")
        for key in ("w_recon", "w_l1", "w_l2", "w_grad", "noise"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config.{key}: {getattr(self, key)!r} must be >= 0")
        if not 0.0 < self.val_fraction < 1.0 or not 0.0 <= self.outlier_fraction < 1.0:
            raise ConfigError(f"config.val_fraction ({self.val_fraction}) must be in (0, 1) and "
                              f"config.outlier_fraction ({self.outlier_fraction}) in [0, 1)")
        if not 0.0 < self.plateau_factor < 1.0:
            raise ConfigError(f"config.plateau_factor: {self.plateau_factor!r} must be in (0, 1)")
        self.hidden_widths()
        if not self.inputs or not self.outputs:
            raise ConfigError("config.inputs and config.outputs: name at least one column each")
        if self.dataset is not None:  # a file the user names: its columns are checked now, before any work
            path = resolve(self.dataset, self.demo(), self.datasets_root)
            if not path.is_file():
                raise ConfigError(f"config.dataset: {path}: no such file")
            check_columns(path, {"inputs": self.inputs, "outputs": self.outputs, "clean_outputs": self.clean()})
        else:
            check_demo = {"x1", "x2", "x3", "y", "y_clean", "is_outlier"}
            for key in ("inputs", "outputs", "clean_outputs"):
                bad = [c for c in (getattr(self, key) or []) if c not in check_demo]
                if bad:
                    raise ConfigError(f"config.{key}: column(s) {', '.join(map(repr, bad))} not in the demo dataset; "
                                      f"its columns: {', '.join(sorted(check_demo))}")

    def loss_at(self, step: int) -> str:
        """The training loss at optimiser ``step`` (``loss_schedule``, else ``loss``)."""
        if not self.loss_schedule:
            return self.loss
        return [name for start, name in self.loss_schedule if start <= step][-1]

    def val_loss_name(self) -> str:
        """The loss ``val_loss`` measures: the last of the schedule (comparable over the whole run)."""
        return self.loss_schedule[-1][1] if self.loss_schedule else self.loss

    def hidden_widths(self) -> list[int]:
        """``widths`` as a list of ints (``"128x64"`` -> ``[128, 64]``)."""
        try:
            widths = [int(w) for w in self.widths.split("x")] if isinstance(self.widths, str) else list(self.widths)
        except ValueError:
            raise ConfigError(f"config.widths: {self.widths!r} is not a list of widths or a string like '128x128'") \
                from None
        if not widths or min(widths) < 1:
            raise ConfigError(f"config.widths: {self.widths!r} needs at least one width, each >= 1")
        return widths

    def demo(self) -> DemoSpec:
        return DemoSpec(rows=self.demo_rows, outlier_fraction=self.outlier_fraction, noise=self.noise,
                        seed=self.data_seed)

    def clean(self) -> list[str]:
        """Clean-truth columns to score against: as given, else the demo's ``y_clean``, else none."""
        if self.clean_outputs is not None:
            return list(self.clean_outputs)
        return ["y_clean"] if self.dataset is None and self.outputs == ["y"] else []


    def metric_names(self) -> set[str]:
        names = {"step", "epoch", "total_steps", "lr", "train_loss", "recon", "l1", "l2", "grad_penalty",
                 "val_loss", "val_rmse", "val_mae", "best_val_loss", "best_step", "stopped_early", "steps_per_s",
                 "rows_per_s"} | ({"loss_phase"} if self.loss_schedule else set())
        names |= {f"val_rmse_{c}" for c in self.outputs}
        if self.clean():
            names |= {"clean_rmse_val", "clean_rmse_all"}
        return names


def dataset_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    """``{dataset name: content hash}`` of the table a trial with ``config`` reads (the demo generated if missing)."""
    cfg = RegressionConfig.from_dict(config)
    path = resolve(cfg.dataset, cfg.demo(), cfg.datasets_root)
    return {path.stem: file_hash(path)}


def dataset_paths(config: Mapping[str, Any]) -> list[Path]:
    """The table a trial with ``config`` reads (the family's ``dataset_paths`` hook): the one
    :func:`dataset_hashes` opens, computed without generating or reading it."""
    cfg = RegressionConfig.from_dict(config)
    return [dataset_path(cfg.dataset, cfg.demo(), cfg.datasets_root)]
