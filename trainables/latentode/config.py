"""The latent ODE family's configuration, with defaults.

Data (:mod:`.sources`, :mod:`.observations`): ``system`` (``pendulum``: the double-pendulum
dataset that ``sims``, ``t_end``, ``dt``, ``data_seed`` and ``theta_max_deg`` describe, generated
on first use, or ``dataset``, a pendulum dataset file by path or name; ``linear``: the known
linear system, ``linear_trajs`` training trajectories sampled every ``dt``; ``twobody``: the orbits of
the planar two-body training set ``dataset`` (a standard name, :data:`TWOBODY_DEFAULT` when unset;
validation and test: the same population's ``val`` and ``test`` sets of min(orbits, 10) orbits),
each orbit ``t_end`` TU from the dataset's epoch, sampled every ``dt`` TU, canonical units); ``observed`` channels (``positions`` or ``full``); a ``context`` window and a ``forecast`` window (s) with ``n_obs`` and
``n_forecast_obs`` irregular observations, Gaussian ``noise`` (physical units), ``obs_seed``;
``windows`` observation windows per trajectory (at random starts; validation and test take half
as many, at least one).
Times, ``context``, ``forecast``, ``dt``, ``substep`` and ``time_scale`` are in the system's time unit
(s; TU for ``twobody``), ``noise`` in its channels' units.
Model (:mod:`.model`): ``model`` (``latent_ode``, the ``gru`` baseline, or ``state_ode``: the
two-body family's field integrated from the first observed state; ``twobody`` with ``observed:
full`` only), ``latent``,
``encoder`` (``gru``, ``odernn``), ``enc_hidden``, the field's ``width``, ``depth``,
``activation``, ``dec_width``, ``method`` and ``substep`` (s, fixed-step methods), ``time_scale``
(s: the field is ``MLP(z) / time_scale`` and the encoder reads gaps in that unit). Loss: Gaussian
likelihood with ``obs_std`` (normalised units; ``learn_std``: learned per channel), ``kl_weight``
reached linearly over ``kl_anneal_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from trainables.common.best import check_stopping
from trainables.common.config import FamilyConfig, require_at_least, require_choice, require_positive
from trainables.common.errors import ConfigError
from trainables.common.lr import LR_SCHEDULES
from trainables.common.nn import ACTIVATIONS
from trainables.pendulum.dataset import PendulumSpec, open_for_training, training_path
from trainables.twobody.dataset import dataset_path, load_named, spec_from_name

from .model import ENCODERS, METHODS, MODELS, ODE_MODELS
from .sources import OBSERVED, SYSTEMS, channels

DEVICES = ("auto", "cpu", "cuda")
TWOBODY_DEFAULT = "complex_TBP_planar_100_train"
"""The two-body training set when ``dataset`` is unset."""


@dataclass(frozen=True)
class LatentODEConfig(FamilyConfig):
    """All settings of one latent ODE trial (see the module docstring)."""

    seed: int = 0
    datasets_root: str | None = None
    dataset: str | None = None
    system: str = "pendulum"
    sims: int = 100
    t_end: float = 20.0
    dt: float = 0.05
    data_seed: int = 0
    theta_max_deg: float = 30.0
    linear_trajs: int = 64
    observed: str = "full"
    context: float = 5.0
    forecast: float = 5.0
    n_obs: int = 40
    n_forecast_obs: int = 20
    noise: float = 0.01
    obs_seed: int = 0
    windows: int = 8
    model: str = "latent_ode"
    latent: int = 8
    encoder: str = "gru"
    enc_hidden: int = 32
    width: int = 64
    depth: int = 2
    activation: str = "tanh"
    dec_width: int = 32
    method: str = "rk4"
    substep: float = 0.1
    time_scale: float = 0.2
    obs_std: float = 0.1
    learn_std: bool = False
    kl_weight: float = 1.0
    kl_anneal_steps: int = 0
    batch_size: int = 32
    steps: int = 2000
    lr: float = 3e-3
    lr_schedule: str = "constant"
    min_lr: float = 0.0
    patience: int = 0
    report_every: int = 100
    device: str = "auto"

    def __post_init__(self) -> None:
        require_choice(self, {"system": SYSTEMS, "observed": OBSERVED, "model": MODELS, "encoder": ENCODERS,
                              "method": METHODS, "activation": ACTIVATIONS, "device": DEVICES,
                              "lr_schedule": LR_SCHEDULES})
        require_at_least(self, ("sims", "linear_trajs", "windows", "n_obs", "n_forecast_obs", "latent", "enc_hidden", "width",
                                "depth", "dec_width", "batch_size", "steps", "report_every"))
        require_positive(self, ("t_end", "dt", "context", "forecast", "substep", "time_scale", "obs_std", "lr"))
        for key in ("noise", "kl_weight", "kl_anneal_steps"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"config.{key}: {getattr(self, key)!r} must be >= 0")
        check_stopping(self.patience, self.min_lr, self.lr)
        unit = self.time_unit
        if self.context + self.forecast > self.span + 1e-9:
            raise ConfigError(f"config.context + config.forecast: {self.context + self.forecast:g} {unit} exceed the "
                              f"trajectories' {self.span:g} {unit} (t_end)")
        if self.system != "pendulum" or self.dataset is None:  # the time grid is this config's dt
            points = {"n_obs": round(self.context / self.dt), "n_forecast_obs": round(self.forecast / self.dt)}
            for key, room in points.items():
                if getattr(self, key) > room:
                    window = "context" if key == "n_obs" else "forecast"
                    raise ConfigError(f"config.{key}: {getattr(self, key)} observations need that many grid points; "
                                      f"the {window} window ({getattr(self, window):g} {unit} at dt {self.dt:g} "
                                      f"{unit}) holds {room}")
        if self.system == "pendulum":
            try:
                self.pendulum_spec()
            except ConfigError as err:
                raise ConfigError(f"config.{err}") from None
        if self.system == "twobody":
            self.twobody_names()
        if self.model == "state_ode" and (self.system, self.observed) != ("twobody", "full"):
            raise ConfigError(f"config.model: state_ode (the two-body family's field, started from an observed "
                              f"state) needs system: twobody and observed: full, not system: {self.system}, "
                              f"observed: {self.observed}; allowed models here: latent_ode, gru")

    @property
    def span(self) -> float:
        """How long the trajectories are (their time unit): ``t_end``; the linear system's, the two windows."""
        return self.context + self.forecast if self.system == "linear" else self.t_end

    @property
    def time_unit(self) -> str:
        """The unit of times, windows, ``dt`` and ``substep``: ``TU`` for two-body, else ``s``."""
        return "TU" if self.system == "twobody" else "s"

    def twobody_names(self) -> dict[str, str]:
        """``{split: two-body dataset name}``: ``dataset`` (or :data:`TWOBODY_DEFAULT`) for training, the
        same population's ``val`` and ``test`` sets of min(orbits, 10) orbits.

        Raises:
            ConfigError: ``dataset`` is not a standard planar training-set name.
        """
        name = self.dataset or TWOBODY_DEFAULT
        try:
            spec = spec_from_name(name)
        except ConfigError as err:
            raise ConfigError(f"config.dataset: {err}") from None
        if spec.split != "train" or not spec.planar:
            raise ConfigError(f"config.dataset: {name!r} must be a planar training set "
                              "(<kind>_TBP_planar[_rotated|_mirrored|_any]_<orbits>_train)")
        small = min(spec.orbits, 10)
        return {"train": name, "val": replace(spec, orbits=small, split="val").name,
                "test": replace(spec, orbits=small, split="test").name}

    def pendulum_spec(self) -> PendulumSpec:
        return PendulumSpec(sims=self.sims, t_end=self.t_end, dt=self.dt, seed=self.data_seed,
                            theta_max_deg=self.theta_max_deg)

    def metric_names(self) -> set[str]:
        names = {"step", "epoch", "total_steps", "lr", "train_loss", "nll", "val_interp_mse", "val_extrap_mse",
                 "steps_per_s", "best_val_extrap_mse", "best_step", "stopped_early"}
        names |= {"test/interp_mse", "test/extrap_mse"}
        names |= {f"test/{w}_rmse_{c}" for w in ("interp", "extrap") for c in channels(self.system, self.observed)}
        if self.model == "latent_ode":
            names |= {"kl", "kl_weight_now", "val_elbo", "test/elbo"}
        if self.model in ODE_MODELS:
            names.add("nfe_per_step")
        if self.system == "twobody":
            names |= {f"test/{q}_{k}" for q in ("energy", "angmom") for k in ("drift", "error")}
        return names


def dataset_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    """``{dataset name: content hash}`` of the datasets a trial reads (none for ``linear``)."""
    cfg = LatentODEConfig.from_dict(config)
    if cfg.system == "twobody":
        return {name: load_named(name, cfg.datasets_root).content_hash for name in cfg.twobody_names().values()}
    if cfg.system != "pendulum":
        return {}
    ds = open_for_training(cfg.dataset, cfg.pendulum_spec(), cfg.datasets_root)
    return {ds.path.stem: ds.content_hash}


def dataset_paths(config: Mapping[str, Any]) -> list[Path]:
    """The dataset files or folders a trial reads (none for ``linear``), computed without generating them."""
    cfg = LatentODEConfig.from_dict(config)
    if cfg.system == "twobody":
        return [dataset_path(name, cfg.datasets_root) for name in cfg.twobody_names().values()]
    return [training_path(cfg.dataset, cfg.pendulum_spec(), cfg.datasets_root)] if cfg.system == "pendulum" else []
