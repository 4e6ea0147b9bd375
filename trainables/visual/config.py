"""The visual family's configuration, with defaults.

Data: the frame dataset that ``env``, ``seqs``, ``seq_steps``, ``dt`` (None: the env's),
``data_seed``, ``hold``, ``size`` and ``colour`` describe, rendered on first use; or ``dataset``,
a frame dataset folder (``dynsweep data frames``) by name under the datasets folder or by path.
Model (:mod:`.model`): ``predictor``, ``latent_channels`` (``L``, even: ``q`` and ``p`` get half
each), ``hidden`` (convolution channels), ``depth`` (predictor convolutions; ``spatial_lstm`` is
one ConvLSTM cell and has none), ``activation``,
``method``/``substeps`` for the continuous predictors (``leapfrog``: spatial_hamiltonian only),
``context`` (``K``, frames the encoder sees). Loss: ``beta`` (KL weight), ``free_bits`` (nats per
latent element below which the KL is not pushed down), ``predictor_weight``. Training: ``mode``
(``hgn``: end to end through the rollout, one optimiser; ``detached``: per-frame VAE plus a
predictor trained on detached latents, two optimisers), ``horizon`` (frames rolled out per
training window), ``freeze`` (parts not trained) and ``init_from``/``init_parts`` (start those
parts from another run's checkpoint: two-phase training). Validation: ``val_horizon`` frames per
open-loop window (the sweep metric ``val_pixel_mse``, independent of the training ``horizon``); the
best-on-validation model is chosen by ``val_pixel_mse``, or by ``val_recon_mse`` when
``predictor_weight`` is 0 (the VAE alone is trained: phase 1 of two-phase training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables.common.best import check_stopping
from trainables.common.config import FamilyConfig, require_at_least, require_choice
from trainables.common.errors import ConfigError
from trainables.common.lr import LR_SCHEDULES
from trainables.common.nn import ACTIVATIONS
from trainables.common.split_dataset import SPLITS, split_hashes
from trainables.common.split_dataset import named_folder as split_folder
from trainables.worldmodels.data import WorldSpec
from trainables.worldmodels.envs import canonical_env

from .data import FrameSpec, dataset_path, ensure, spec_of
from .model import CONTINUOUS, METHODS, PARTS, PREDICTORS
from .render import COLOUR_MODES

MODES = ("hgn", "detached")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class VisualConfig(FamilyConfig):
    """All settings of one visual world-model trial (see the module docstring)."""

    seed: int = 0
    datasets_root: str | None = None
    dataset: str | None = None
    env: str = "pendulum"
    seqs: int = 64
    seq_steps: int = 60
    dt: float | None = None
    data_seed: int = 0
    hold: int = 5
    size: int = 64
    colour: str = "grey"
    predictor: str = "spatial_jump"
    latent_channels: int = 8
    hidden: int = 32
    depth: int = 2
    activation: str = "softplus"
    method: str = "rk4"
    substeps: int = 2
    context: int = 2
    beta: float = 1e-3
    free_bits: float = 0.0
    predictor_weight: float = 1.0
    mode: str = "hgn"
    horizon: int = 10
    val_horizon: int = 10
    freeze: list[str] = field(default_factory=list)
    init_from: str | None = None
    init_parts: list[str] = field(default_factory=lambda: ["encoder", "decoder"])
    batch_size: int = 16
    steps: int = 2000
    lr: float = 1e-3
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    patience: int = 0
    report_every: int = 100
    eval_horizons: list[int] = field(default_factory=lambda: [1, 10, 50])
    dt_factors: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    energy_steps: int = 200
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.env, str):
            object.__setattr__(self, "env", canonical_env(self.env))
        require_choice(self, {"predictor": PREDICTORS, "method": METHODS, "activation": ACTIVATIONS, "mode": MODES,
                              "colour": COLOUR_MODES, "device": DEVICES, "lr_schedule": LR_SCHEDULES})
        require_at_least(self, ("seqs", "seq_steps", "hold", "latent_channels", "hidden", "depth", "substeps",
                                "context", "horizon", "val_horizon", "batch_size", "steps", "report_every",
                                "energy_steps"))
        if self.latent_channels % 2:
            raise ConfigError(f"config.latent_channels: {self.latent_channels} must be even (q and p get half each)")
        for key in ("lr", "beta", "free_bits", "predictor_weight"):
            value = getattr(self, key)
            if not value >= 0 or (key == "lr" and not value > 0):
                raise ConfigError(f"config.{key}: {value!r} must be {'> 0' if key == 'lr' else '>= 0'}")
        if self.dt is not None and not self.dt > 0:
            raise ConfigError(f"config.dt: {self.dt!r} must be > 0")
        check_stopping(self.patience, self.min_lr, self.lr)
        if self.method == "leapfrog" and self.predictor != "spatial_hamiltonian":
            raise ConfigError(f"config.method: leapfrog needs predictor spatial_hamiltonian (a separable H), "
                              f"not {self.predictor!r}; use rk4, midpoint or euler")
        for key in ("freeze", "init_parts"):
            bad = [p for p in getattr(self, key) if p not in PARTS]
            if bad:
                raise ConfigError(f"config.{key}: {bad} not allowed; allowed parts: {', '.join(PARTS)}")
        if set(PARTS) <= set(self.freeze):
            raise ConfigError("config.freeze: every part is frozen; nothing would train")
        if self.predictor_weight == 0 and {"encoder", "decoder"} <= set(self.freeze):
            raise ConfigError("config.freeze: encoder and decoder frozen with predictor_weight 0: nothing would train "
                              "(the predictor learns only through predictor_weight > 0)")
        if self.init_from is not None and not self.init_parts:
            raise ConfigError("config.init_parts: empty; name the parts to take from init_from")
        if not self.eval_horizons or min(self.eval_horizons) < 1:
            raise ConfigError(f"config.eval_horizons: {self.eval_horizons!r} must be frames >= 1")
        if self.dataset is None:  # a named dataset's length is checked when it is read (check_length)
            check_length(self, self.seq_steps + 1, "seq_steps - context + 1")
        if not self.dt_factors or any(not f > 0 for f in self.dt_factors):
            raise ConfigError(f"config.dt_factors: {self.dt_factors!r} must be factors > 0 of the data's dt")
        try:
            self.frame_spec()
        except ConfigError as err:
            raise ConfigError(str(err) if str(err).startswith("config.") else f"config.{err}") from None

    def frame_spec(self) -> FrameSpec:
        world = WorldSpec(env=self.env, seqs=self.seqs, steps=self.seq_steps, dt=self.dt, seed=self.data_seed,
                          hold=self.hold)
        return FrameSpec(world=world, size=self.size, colour=self.colour)

    @property
    def selection_metric(self) -> str:
        """The validation metric that picks the best model (see the module docstring)."""
        return "val_recon_mse" if self.predictor_weight == 0 else "val_pixel_mse"

    @property
    def continuous(self) -> bool:
        return self.predictor in CONTINUOUS

    def metric_names(self) -> set[str]:
        names = {"step", "epoch", "total_steps", "lr", "train_loss", "recon_loss", "pred_loss", "kl", "val_pixel_mse",
                 "val_recon_mse", "steps_per_s", f"best_{self.selection_metric}", "best_step", "stopped_early"}
        names |= {f"test/pixel_mse_h{h}" for h in self.eval_horizons}
        names |= {f"test/copy_last_mse_h{h}" for h in self.eval_horizons}
        names |= {"test/recon_mse", "test/pixel_mse_mean", "test/copy_last_mse_mean"}
        if self.predictor == "spatial_hamiltonian":
            names.add("test/latent_energy_drift")
        if self.continuous:
            names |= {f"test/dt_x{f:g}_mse" for f in self.dt_factors}
        return names


def check_length(cfg: VisualConfig, frames: int, what: str = "its sequences' frames - context") -> None:
    """Refuse horizons longer than sequences of ``frames`` frames allow after the context.

    Raises:
        ConfigError: naming the key and the limit.
    """
    window = frames - cfg.context
    for key in ("horizon", "val_horizon", "eval_horizons"):
        value = getattr(cfg, key)
        if (max(value) if isinstance(value, list) else value) > window:
            source = f"{what} = {window}" if cfg.dataset is None else f"dataset {cfg.dataset}: {what} = {window}"
            raise ConfigError(f"config.{key}: {value!r} exceeds the frames after the context ({source})")


def named_folder(cfg: VisualConfig) -> Path:
    """The folder ``cfg.dataset`` names: a path to a folder, else a name under the datasets folder."""
    assert cfg.dataset is not None
    return split_folder(cfg.dataset, cfg.datasets_root)


def dataset_folder(cfg: VisualConfig) -> Path:
    """The frame dataset a trial reads: ``cfg.dataset`` (checked: three splits of a frame dataset of
    ``cfg.env``), else the one the data settings describe, rendered on first use.

    Raises:
        ConfigError: the named dataset is missing, not a frame dataset, or of another environment.
    """
    if cfg.dataset is None:
        return ensure(cfg.frame_spec(), cfg.datasets_root)[0]
    folder = named_folder(cfg)
    missing = [s for s in SPLITS if not (folder / f"{s}.parquet").is_file()]
    if missing:
        raise ConfigError(f"config.dataset: {folder} is not a frame dataset (no {', '.join(missing)} split); "
                          "make one with `dynsweep data frames`")
    try:
        spec = spec_of(folder)
    except Exception as err:  # noqa: BLE001 - any unreadable footer is "not a frame dataset"
        raise ConfigError(f"config.dataset: {err}") from None
    if spec.world.env != cfg.env:
        raise ConfigError(f"config.dataset: {folder} holds env {spec.world.env!r}, the config says env {cfg.env!r}")
    return folder


def dataset_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    """``{split name: content hash}`` of the frame dataset a trial with ``config`` reads (rendered if missing)."""
    return split_hashes(dataset_folder(VisualConfig.from_dict(config)))


def dataset_paths(config: Mapping[str, Any]) -> list[Path]:
    """The frame dataset folder a trial with ``config`` reads, computed without rendering it."""
    cfg = VisualConfig.from_dict(config)
    return [named_folder(cfg) if cfg.dataset else dataset_path(cfg.frame_spec(), cfg.datasets_root)]
