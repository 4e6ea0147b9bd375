"""The family registry: the one door through which ``search`` reaches the families.

Each family is one :class:`Family` record: plain data naming every hook the family provides
(``module:attribute`` paths, imported lazily so that ``dynsweep --version`` or a YAML
validation does not pay for torch). ``docs/families.md`` says what each hook must do, and
``tests/test_family_contract.py`` checks every registered family against it.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from trainables.common.errors import ConfigError

GENERIC_PLOTS = ("curves", "box", "heatmap", "parallel")
"""Plot kinds that apply to every family (they read metrics and parameters only)."""


@dataclass(frozen=True)
class Family:
    """Everything a model family provides. Required: ``run``, ``config``, ``smoke``.

    Attributes:
        run: ``run(config, reporter) -> dict`` trains and evaluates one trial.
        config: a :class:`~trainables.common.config.FamilyConfig` subclass (``from_dict``,
            ``to_dict``, ``metric_names``).
        smoke: a config (overrides of the defaults) that trains and evaluates in seconds on a
            CPU; the conformance test runs it. ``datasets_root`` is added by the test where the
            config has that key.
        datasets: ``dataset_hashes(config) -> {dataset name: content hash}``, beside the config;
            the driver records them so that cluster nodes can check their copies.
        data_cli: a module with ``COMMANDS``, the ``dynsweep data <name>`` sub-commands.
        describe: ``describe(path) -> str | None``, one line about a dataset it recognises
            (``dynsweep data ls``).
        tags: names of the run tags the family reports through ``reporter.tags``.
        artifacts: a tuple of :class:`~trainables.common.artifacts.ArtifactFormat` (the files the
            final evaluation writes into ``reporter.artifact_dir()``).
        plot_kinds: the family's own ``dynsweep plot`` kinds (the generic ones apply to all).
        table_columns: metric names (``fnmatch`` patterns) ``dynsweep analyze`` shows after the
            sweep metric.
        clock_metrics: metrics that measure wall-clock time (throughput); every other metric is a
            function of the config alone on a CPU (same config, same values; resumed runs too).
        replicates: whether one trial can train several seeds as one vectorised model.
        exports_model: whether the final evaluation writes ``model.pt`` + ``model.json`` (TorchScript,
            :func:`trainables.common.export.export_torchscript`), which the driver logs as an MLflow model.
        trial_length: ``trial_length(cfg) -> {"training_iteration": reports, "step": last step} | None``
            for a config object: where a trial that trains to its end stops in Tune's time attributes
            (None: known only at run time). Validation warns when ASHA's ``max_t`` lies beyond it.
        dataset_paths: ``dataset_paths(config) -> [Path]`` for a resolved config mapping: the files
            and folders a trial with that config reads, computed without generating or reading
            anything (they may not exist). Validation checks the Parquet footers of those that exist.
        evaluate: ``evaluate(checkpoint_dir, config, datasets, artifact_dir) -> metrics``: the model of
            a final checkpoint evaluated as at the end of training under ``config`` (the saved config,
            possibly changed), plus the named ``datasets`` (``dynsweep evaluate``); the same
            metric names and artefacts as the last report for the config's own test data.
        derived_params: ``derived_params(config) -> {name: number}`` for a resolved config mapping:
            quantities computed from the config (and at most a dataset's footer) that the driver logs
            as MLflow parameters beside the config, so analysis can table and plot them.
    """

    run: str
    config: str
    smoke: dict[str, Any] = field(default_factory=dict)
    datasets: str | None = None
    data_cli: str | None = None
    describe: str | None = None
    tags: tuple[str, ...] = ()
    artifacts: str | None = None
    plot_kinds: tuple[str, ...] = ()
    table_columns: tuple[str, ...] = ()
    clock_metrics: tuple[str, ...] = ("steps_per_s",)
    replicates: bool = False
    exports_model: bool = False
    trial_length: str | None = None
    dataset_paths: str | None = None
    evaluate: str | None = None
    derived_params: str | None = None

    def hooks(self) -> dict[str, str]:
        """The ``module:attribute`` hooks this record names (for the contract check)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in ("run", "config", "datasets", "describe", "artifacts", "trial_length", "dataset_paths",
                              "evaluate", "derived_params")
                and getattr(self, f.name)}

    def all_plot_kinds(self) -> tuple[str, ...]:
        return GENERIC_PLOTS + tuple(k for k in self.plot_kinds if k not in GENERIC_PLOTS)


STEPS = "trainables.registry:length_in_steps"
"""The ``trial_length`` of a family that trains ``steps`` and reports every ``report_every`` and at the last."""

FAMILIES: dict[str, Family] = {
    "twobody": Family(
        run="trainables.twobody.train:run", config="trainables.twobody.config:TwoBodyConfig",
        evaluate="trainables.twobody.train:evaluate_checkpoint",
        derived_params="trainables.twobody.data:derived_params",
        smoke={"train_dataset": "complex_TBP_planar_1_train", "test_datasets": ["complex_TBP_planar_1_test"],
               "width": 8, "depth": 2, "segment_length": 10, "batch_size": 16, "steps": 6, "report_every": 3,
               },
        datasets="trainables.twobody.data:dataset_hashes",
        dataset_paths="trainables.twobody.data:dataset_paths", data_cli="trainables.twobody.data_cli",
        describe="trainables.twobody.data_cli:describe",
        tags=("train_dataset_sha256", "val_dataset_sha256", "replicates_dropped"),
        artifacts="trainables.twobody.artifacts:FORMATS",
        plot_kinds=("errors", "loglog", "trajectory", "field", "anomaly", "orbits"),
        table_columns=("test/*/accel_err_mean", "test/*/theta_deg", "test/*/radial_pct", "test/*/sign_flips"),
        clock_metrics=("steps_per_s", "first_step_s", "replicate_steps_per_s"),
        replicates=True,
        exports_model=True, trial_length=STEPS),
    "pendulum": Family(
        run="trainables.pendulum.train:run", config="trainables.pendulum.config:PendulumConfig",
        evaluate="trainables.pendulum.train:evaluate_checkpoint",
        smoke={"sims": 8, "t_end": 3.0, "hidden": 8, "layers": 1, "window": 8, "steps": 6, "report_every": 3,
               "batch_size": 32, "horizons": [5], "lyapunov_t_end": 1.0, "eval_sims": 2, "val_windows": 64},
        datasets="trainables.pendulum.config:dataset_hashes",
        dataset_paths="trainables.pendulum.config:dataset_paths", data_cli="trainables.pendulum.data_cli",
        describe="trainables.pendulum.data_cli:describe",
        tags=("dataset_sha256",),
        artifacts="trainables.pendulum.artifacts:FORMATS",
        plot_kinds=("angles", "error-growth", "energy-drift"),
        table_columns=("test/vpt_lyapunov", "test/vpt_s", "test/rollout_nrmse_h*", "test/one_step_nrmse",
                       "test/lyapunov_ratio", "test/energy_drift_rel"),
        clock_metrics=("steps_per_s", "windows_per_s"),
        exports_model=True, trial_length=STEPS),
    "regression": Family(
        run="trainables.regression.train:run", config="trainables.regression.config:RegressionConfig",
        evaluate="trainables.regression.train:evaluate_checkpoint",
        smoke={"widths": "16x16", "steps": 6, "report_every": 3, "batch_size": 64},
        datasets="trainables.regression.config:dataset_hashes",
        dataset_paths="trainables.regression.config:dataset_paths", data_cli="trainables.regression.data_cli",
        describe="trainables.regression.data_cli:describe",
        tags=("dataset_sha256", "rows_dropped"),
        artifacts="trainables.regression.artifacts:FORMATS",
        plot_kinds=("pred-vs-true", "residuals", "by-loss"),
        table_columns=("clean_rmse_all", "clean_rmse_val", "val_rmse", "val_mae"),
        clock_metrics=("steps_per_s", "rows_per_s"),
        exports_model=True, trial_length=STEPS),
    "worldmodels": Family(
        run="trainables.worldmodels.train:run", config="trainables.worldmodels.config:WorldConfig",
        evaluate="trainables.worldmodels.train:evaluate_checkpoint",
        smoke={"seqs": 6, "seq_steps": 12, "steps": 6, "report_every": 3, "width": 16, "horizon": 2,
               "eval_horizons": [1, 5]},
        datasets="trainables.worldmodels.config:dataset_hashes",
        dataset_paths="trainables.worldmodels.config:dataset_paths", data_cli="trainables.worldmodels.data_cli",
        describe="trainables.worldmodels.data_cli:describe",
        tags=("dataset", "dataset_sha256", "dt_generalisation"),
        artifacts="trainables.worldmodels.artifacts:FORMATS",
        plot_kinds=("horizon", "energy", "dt-generalisation", "phase"),
        table_columns=("test/rollout_mse_h*", "test/energy_drift", "test/dt_x*_mse"),
        exports_model=True, trial_length=STEPS),
    "visual": Family(
        run="trainables.visual.train:run", config="trainables.visual.config:VisualConfig",
        evaluate="trainables.visual.train:evaluate_checkpoint",
        smoke={"seqs": 4, "seq_steps": 12, "size": 16, "steps": 6, "report_every": 3, "hidden": 8,
               "latent_channels": 4, "horizon": 3, "batch_size": 4, "eval_horizons": [1, 5]},
        datasets="trainables.visual.config:dataset_hashes", dataset_paths="trainables.visual.config:dataset_paths",
        data_cli="trainables.visual.data_cli", describe="trainables.visual.data_cli:describe",
        tags=("dataset", "dataset_sha256", "dt_generalisation"),
        artifacts="trainables.visual.artifacts:FORMATS",
        plot_kinds=("frames", "pixel-horizon"),
        table_columns=("test/pixel_mse_h*", "test/copy_last_mse_h*", "test/recon_mse", "test/latent_energy_drift",
                       "test/dt_x*_mse"),
        trial_length=STEPS),
    "latentode": Family(
        run="trainables.latentode.train:run", config="trainables.latentode.config:LatentODEConfig",
        evaluate="trainables.latentode.train:evaluate_checkpoint",
        smoke={"sims": 10, "t_end": 4.0, "dt": 0.1, "context": 2.0, "forecast": 2.0, "n_obs": 5, "n_forecast_obs": 3,
               "steps": 6, "report_every": 3, "latent": 2, "enc_hidden": 8, "width": 8, "dec_width": 8,
               "substep": 0.1, "batch_size": 4},
        datasets="trainables.latentode.config:dataset_hashes",
        dataset_paths="trainables.latentode.config:dataset_paths",
        tags=("dataset_sha256", "observations_sha256"),
        artifacts="trainables.latentode.artifacts:FORMATS",
        plot_kinds=("forecast",),
        table_columns=("test/extrap_mse", "test/interp_mse", "test/extrap_rmse_*", "test/elbo"),
        trial_length=STEPS),
    "timestepper": Family(
        run="trainables.timestepper.train:run", config="trainables.timestepper.config:StepperConfig",
        evaluate="trainables.timestepper.train:evaluate_checkpoint",
        smoke={"width": 8, "epochs": 2, "collect_steps": 60, "phase2_max_iters": 20, "max_retries": 20,
               "eval_orbits": 0.5},
        artifacts="trainables.timestepper.artifacts:FORMATS",
        plot_kinds=("dt-orbit", "pareto"), clock_metrics=("steps_per_s", "epoch_s"),
        table_columns=("test/energy_error", "test/steps_per_orbit", "test/steps_ratio_fixed", "test/steps_ratio_r32"),
        exports_model=True, trial_length="trainables.registry:length_in_epochs"),
    "dummy": Family(run="trainables.dummy.family:run", config="trainables.dummy.family:DummyConfig",
                    smoke={"steps": 4, "report_every": 1, "checkpoint_every": 2},
                    clock_metrics=("t_start", "t_now"), trial_length=STEPS),
}
"""Family name -> its record. Adding a family = one folder under ``trainables/`` + one entry here."""


def load(path: Any) -> Any:
    """The object at ``module:attribute`` (an object given instead of a path is returned as is)."""
    if not isinstance(path, str):
        return path
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def entry(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def family_run(name: str) -> Callable[..., dict[str, float]]:
    """The ``run(config, reporter)`` of family ``name``."""
    return load(entry(name).run)


def family_evaluate(name: str) -> Callable[..., dict[str, float]]:
    """The ``evaluate(checkpoint_dir, config, datasets, artifact_dir)`` hook of family ``name``.

    Raises:
        ConfigError: the family cannot evaluate a stored model.
    """
    fam = entry(name)
    if not fam.evaluate:
        raise ConfigError(f"family {name!r} cannot evaluate a stored model (its registry record has no evaluate hook)")
    return load(fam.evaluate)


def check_replicates_supported(name: str, replicates: int) -> None:
    """Refuse ``replicates > 1`` for a family that does not train seed replicates in one trial.

    Raises:
        ConfigError: naming the family and the families that do.
    """
    if replicates > 1 and not entry(name).replicates:
        from trainables.common.errors import ConfigError

        able = sorted(n for n, fam in FAMILIES.items() if fam.replicates)
        raise ConfigError(f"family {name!r} does not train seed replicates in one trial; families that do: "
                          f"{', '.join(able) or 'none'} (use replicates: 1, or trials that differ in seed)")


def family_config(name: str) -> Any:
    """The config class of family ``name`` (has ``from_dict``, ``to_dict`` and ``metric_names``)."""
    return load(entry(name).config)


def family_datasets(name: str, config: dict[str, Any]) -> dict[str, str]:
    """``{dataset name: content hash}`` of what a trial of family ``name`` with ``config`` reads."""
    path = entry(name).datasets
    return load(path)(config) if path else {}


def family_dataset_paths(name: str, config: dict[str, Any]) -> list[Path]:
    """The files and folders a trial of family ``name`` with ``config`` reads (nothing generated or
    read; they may not exist). Empty when the family declares no ``dataset_paths`` hook."""
    path = entry(name).dataset_paths
    return [Path(p) for p in load(path)(config)] if path else []


def family_trial_length(name: str) -> Callable[[Any], dict[str, int] | None] | None:
    """The ``trial_length`` hook of family ``name`` (None when the family declares none)."""
    path = entry(name).trial_length
    return load(path) if path else None


def _reports(length: int | None, every: int) -> dict[str, int] | None:
    """A trial that reports every ``every`` units and at its last (unit ``length``)."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 1 or every < 1:
        return None
    return {"training_iteration": -(-length // every), "step": length}


def length_in_steps(cfg: Any) -> dict[str, int] | None:
    """``trial_length`` for a config with ``steps`` and ``report_every``; a config with phases
    (``curriculum()``) trains the sum of their steps and reports at the end of each phase too,
    unknown when a phase counts epochs."""
    phases = cfg.curriculum() if getattr(cfg, "phases", None) and hasattr(cfg, "curriculum") else None
    if phases:
        if any(getattr(ph, "epochs", None) is not None or ph.steps is None for ph in phases):
            return None
        ends = list(itertools.accumulate(int(ph.steps) for ph in phases))
        out = _reports(ends[-1], cfg.report_every)
        if out is not None:  # a phase's end is reported too
            out["training_iteration"] += sum(1 for e in ends[:-1] if e % cfg.report_every)
        return out
    return _reports(cfg.steps, cfg.report_every)


def length_in_epochs(cfg: Any) -> dict[str, int] | None:
    """``trial_length`` for a config with ``epochs`` and ``report_every`` (its step is the epoch)."""
    return _reports(cfg.epochs, cfg.report_every)


def data_commands() -> dict[str, Any]:
    """All ``dynsweep data`` sub-commands of all families, by name, plus ``ls``."""
    from trainables.common.listing import ls_command

    describers = [load(fam.describe) for fam in FAMILIES.values() if fam.describe]
    commands: dict[str, Any] = {"ls": ls_command(describers)}
    for fam in FAMILIES.values():
        if fam.data_cli:
            commands.update(importlib.import_module(fam.data_cli).COMMANDS)
    return commands
