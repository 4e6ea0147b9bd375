"""The world-model family's configuration (docs/domain.md, section 4), with defaults.

Data: the dataset that ``env``, ``seqs``, ``seq_steps``, ``dt`` (None: the env's), ``data_seed``
``hold``, ``data_scheme`` (``rk4``, or ``symplectic_euler`` as the reference three-body code
integrates), ``param_ranges`` and ``initial_ranges`` (``{name: [low, high]}`` overriding the env's
ranges of physical parameters and initial states, see :mod:`.envs`) describe, generated on first use; or ``dataset``, a pre-generated dataset folder
(``dynsweep data worlds``) by name under the datasets folder or by path, whose env must be ``env``. Model: ``model`` (see :mod:`.models`), ``width``,
``depth``, ``activation``, ``method``/``substeps`` for the continuous ones, ``separable`` for
``port_hamiltonian``. Training: ``horizon`` 1 is single-step matching, more is multi-step
shooting (open loop over ``horizon`` steps from a true state); ``curriculum`` grows the horizon
from 1 to ``horizon`` over the first half of the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables.common.config import FamilyConfig, require_at_least, require_choice
from trainables.common.errors import ConfigError
from trainables.common.nn import ACTIVATIONS
from trainables.common.best import check_stopping
from trainables.common.lr import LR_SCHEDULES
from trainables.common.parquet_store import read_dynsweep_metadata
from trainables.common.split_dataset import named_folder as split_folder
from trainables.common.split_dataset import split_hashes

from .data import SPLITS, WorldSpec, dataset_path, ensure
from .envs import SCHEMES, canonical_env
from .models import METHODS, MODELS, SPLIT_MODELS

DT_FACTORS = (0.5, 2.0, 4.0)
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class WorldConfig(FamilyConfig):
    """All settings of one world-model trial (see the module docstring)."""

    seed: int = 0
    datasets_root: str | None = None
    dataset: str | None = None
    env: str = "pendulum"
    seqs: int = 64
    seq_steps: int = 50
    dt: float | None = None
    data_seed: int = 0
    hold: int = 5
    data_scheme: str = "rk4"
    param_ranges: dict[str, tuple[float, float]] | None = None
    initial_ranges: dict[str, tuple[float, float]] | None = None
    model: str = "newtonian"
    width: int = 64
    depth: int = 2
    activation: str = "tanh"
    method: str = "rk4"
    substeps: int = 2
    separable: bool = False
    horizon: int = 5
    curriculum: bool = False
    batch_size: int = 64
    steps: int = 1000
    lr: float = 1e-3
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    patience: int = 0
    report_every: int = 100
    eval_horizons: list[int] = field(default_factory=lambda: [1, 10, 50])
    dt_factors: list[float] = field(default_factory=lambda: list(DT_FACTORS))
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.env, str):  # three_body, ThreeBody, ... -> threebody
            object.__setattr__(self, "env", canonical_env(self.env))
        require_choice(self, {"model": MODELS, "method": METHODS, "activation": ACTIVATIONS,
                              "device": DEVICES, "lr_schedule": LR_SCHEDULES, "data_scheme": SCHEMES})
        require_at_least(self, ("seqs", "seq_steps", "hold", "width", "depth", "substeps", "horizon", "batch_size",
                                "steps", "report_every"))
        if not self.lr > 0 or (self.dt is not None and not self.dt > 0):
            raise ConfigError("config.lr and config.dt must be > 0")
        check_stopping(self.patience, self.min_lr, self.lr)
        if self.min_lr > 0 and self.lr_schedule == "constant":
            raise ConfigError(f"config.min_lr: {self.min_lr!r} has no effect with lr_schedule: constant; "
                              "use lr_schedule: cosine (decays to min_lr), or leave min_lr at 0")
        try:
            self.data_spec()  # the data settings, ranges included, checked now
        except ConfigError as err:
            raise ConfigError(f"config.{err}" if not str(err).startswith("config.") else str(err)) from None
        if self.horizon > self.seq_steps:
            raise ConfigError(f"config.horizon: {self.horizon} exceeds seq_steps={self.seq_steps}")
        if self.method == "leapfrog" and self.model not in SPLIT_MODELS:
            raise ConfigError(f"config.method: leapfrog needs a model with a q/v split ({', '.join(SPLIT_MODELS)}), "
                              f"not {self.model!r}")
        if any(not f > 0 for f in self.dt_factors):
            raise ConfigError(f"config.dt_factors: {self.dt_factors!r} must be factors > 0 of the data's dt")
        if not self.eval_horizons or min(self.eval_horizons) < 1:
            raise ConfigError(f"config.eval_horizons: {self.eval_horizons!r} must be steps >= 1")

    def data_spec(self) -> WorldSpec:
        return WorldSpec(env=self.env, seqs=self.seqs, steps=self.seq_steps, dt=self.dt, seed=self.data_seed,
                         hold=self.hold, scheme=self.data_scheme,
                         param_ranges=_ranges(self.param_ranges, "param_ranges"),
                         initial_ranges=_ranges(self.initial_ranges, "initial_ranges"))


    def metric_names(self) -> set[str]:
        names = {"step", "epoch", "total_steps", "lr", "train_loss", "val_loss", "horizon_now", "steps_per_s",
                 "best_val_loss", "best_step", "stopped_early"}
        names |= {f"test/rollout_mse_h{h}" for h in self.eval_horizons}
        names |= {"test/energy_drift", "test/energy_drift_true"} | {f"test/dt_x{f:g}_mse" for f in self.dt_factors}
        names |= {"test/rollout_mse_mean"}
        return names


def _ranges(given: Mapping[str, Any] | None, key: str) -> tuple[tuple[str, float, float], ...]:
    """``{name: [low, high]}`` as sorted ``(name, low, high)`` triples (a ConfigError names a bad one)."""
    if given is None:
        return ()
    if not isinstance(given, Mapping):
        raise ConfigError(f"config.{key}: expected a mapping of name: [low, high], got {given!r}")
    out = []
    for name, pair in sorted(given.items()):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)):
            raise ConfigError(f"config.{key}.{name}: expected [low, high], got {pair!r}")
        out.append((str(name), float(pair[0]), float(pair[1])))
    return tuple(out)


def dataset_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    """``{split name: content hash}`` of the dataset a trial with ``config`` reads (generated if missing)."""
    return split_hashes(dataset_folder(WorldConfig.from_dict(config)))


def dataset_paths(config: Mapping[str, Any]) -> list[Path]:
    """The dataset folder (train/val/test splits) a trial with ``config`` reads (the family's
    ``dataset_paths`` hook): the one :func:`dataset_hashes` opens, computed without generating it."""
    cfg = WorldConfig.from_dict(config)
    return [named_folder(cfg) if cfg.dataset else dataset_path(cfg.data_spec(), cfg.datasets_root)]


def named_folder(cfg: WorldConfig) -> Path:
    """The folder ``cfg.dataset`` names: a path to a folder, else a name under the datasets folder."""
    assert cfg.dataset is not None
    return split_folder(cfg.dataset, cfg.datasets_root)


def dataset_folder(cfg: WorldConfig) -> Path:
    """The dataset a trial reads: ``cfg.dataset`` (checked: three splits of ``cfg.env``), else the
    one the data settings describe, generated on first use.

    Raises:
        ConfigError: the named dataset is missing or of another environment.
    """
    if cfg.dataset is None:
        return ensure(cfg.data_spec(), cfg.datasets_root)[0]
    folder = named_folder(cfg)
    missing = [s for s in SPLITS if not (folder / f"{s}.parquet").is_file()]
    if missing:
        raise ConfigError(f"config.dataset: {folder} is not a world-model dataset (no {', '.join(missing)} split); "
                          "make one with `dynsweep data worlds`")
    env = (read_dynsweep_metadata(folder / "train.parquet").get("params") or {}).get("env")
    if env != cfg.env:
        raise ConfigError(f"config.dataset: {folder} holds env {env!r}, the config says env {cfg.env!r}")
    return folder
