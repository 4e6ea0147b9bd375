"""Building the ``ray.tune.Tuner`` of a validated sweep spec.

- Search: Optuna TPE (seeded; define-by-run, so conditional parameters are only asked for when
  their condition holds; metric and mode given to the searcher itself) behind a
  ``ConcurrencyLimiter``; or Tune's ``BasicVariantGenerator`` for ``random`` (seeded) and
  ``grid`` (``num_samples`` = repeats of the full grid). Under Optuna, ``grid`` parameters are
  categorical. Inactive conditional parameters fall back to the base value in the trial.
- Scheduler: ASHA (``time_attr``, ``grace_period``, ``reduction_factor``, ``max_t``) or FIFO.
  Trials ASHA stops early reach Optuna as complete with their last value, so the metric should
  be comparable across budgets: a validation loss is; a loss summed over steps is not.
- Resources: ``tune.with_resources`` (fractional GPUs allowed); ``FailureConfig(max_failures=
  retries)`` (never ``fail_fast``, which makes a sweep unrestorable); the last 2 checkpoints
  kept; ``RunConfig`` with an absolute ``storage_path``; a per-trial wall-clock limit as a
  stopper (checked at every report).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from trainables.common.errors import ConfigError

from .spec import Param, SweepSpec
from .sweep_folder import SweepFolder
from .trainable import make_trainable


class TrialTimeLimit(tune.Stopper):
    """Stops a trial once its ``time_total_s`` exceeds ``limit_s`` (checked at each report)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.timed_out: set[str] = set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        if result.get("time_total_s", 0.0) > self.limit_s:
            self.timed_out.add(trial_id)
            return True
        return False

    def stop_all(self) -> bool:
        return False


class FinalMetricOptunaSearch(OptunaSearch):
    """OptunaSearch that lets a trial's intermediate reports lack the metric (a family's test
    metrics come with its last report only); Optuna gets the metric when it is there."""

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if isinstance(self.metric, str) and self.metric not in result:
            return
        super().on_trial_result(trial_id, result)


class OptunaSpace:
    """A define-by-run space for OptunaSearch; returns the fixed values as constants.

    A class (not a closure) so that Tune can pickle the searcher's state for resume.
    """

    def __init__(self, params: tuple[Param, ...]) -> None:
        self.params = params

    def __call__(self, trial: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for p in sorted(self.params, key=lambda q: bool(q.when)):
            if p.when and not p.active(values):
                continue
            if p.kind == "fixed":
                constants[p.name] = values[p.name] = p.args[0]
            elif p.kind in ("choice", "grid"):
                values[p.name] = trial.suggest_categorical(p.name, list(p.args))
            elif p.kind == "uniform":
                values[p.name] = trial.suggest_float(p.name, p.args[0], p.args[1])
            elif p.kind == "loguniform":
                values[p.name] = trial.suggest_float(p.name, p.args[0], p.args[1], log=True)
            elif p.kind == "randint":
                values[p.name] = trial.suggest_int(p.name, p.args[0], p.args[1] - 1)
            elif p.kind == "qrandint":
                values[p.name] = trial.suggest_int(p.name, p.args[0], p.args[1], step=p.args[2])
        return constants


def tune_space(params: tuple[Param, ...], grid: bool) -> dict[str, Any]:
    """A Tune param space for the basic variant generator (random or grid)."""
    space: dict[str, Any] = {}
    for p in params:
        if p.kind == "fixed":
            space[p.name] = p.args[0]
        elif p.kind == "grid" or (grid and p.kind == "choice"):
            space[p.name] = tune.grid_search(list(p.args))
        elif p.kind == "choice":
            space[p.name] = tune.choice(list(p.args))
        elif p.kind == "uniform":
            space[p.name] = tune.uniform(*p.args)
        elif p.kind == "loguniform":
            space[p.name] = tune.loguniform(*p.args)
        elif p.kind == "randint":
            space[p.name] = tune.randint(*p.args)
        elif p.kind == "qrandint":
            space[p.name] = tune.qrandint(*p.args)
    return space


def build_searcher(spec: SweepSpec) -> tuple[Any, dict[str, Any]]:
    """``(search_alg, param_space)`` for the spec's algorithm."""
    if spec.algorithm == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = FinalMetricOptunaSearch(space=OptunaSpace(spec.params), metric=spec.metric, mode=spec.mode,
                                points_to_evaluate=list(spec.points_to_evaluate) or None,
                                sampler=optuna.samplers.TPESampler(seed=spec.seed))
        return Generator(Limiter(searcher, max_concurrent=spec.max_concurrent), spec.num_samples), {}
    generator = VariantGenerator(points_to_evaluate=list(spec.points_to_evaluate) or None,
                                      max_concurrent=spec.max_concurrent, random_state=spec.seed)
    return generator, tune_space(spec.params, grid=spec.algorithm == "grid")


def build_scheduler(spec: SweepSpec) -> Any:
    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr=spec.time_attr, metric=spec.metric, mode=spec.mode, max_t=spec.max_t,
                             grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
    return FIFOScheduler()


def _configs(spec: SweepSpec, callbacks: list[Any], stopper: TrialTimeLimit | None,
             completed: Mapping[str, dict[str, Any]] | None,
             stream_output: bool = False) -> tuple[Any, dict[str, Any], Any, Any]:
    searcher, space = build_searcher(spec)
    trainable = make_trainable(spec.family, spec.base, spec.cpu, spec.gpu, [p for p in spec.params if p.when],
                               completed, stream_output=stream_output)
    tune_config = tune.TuneConfig(search_alg=searcher, scheduler=build_scheduler(spec),
                                  num_samples=spec.num_samples, reuse_actors=spec.reuse_actors,
                                  max_concurrent_trials=None if isinstance(searcher, Generator) else spec.max_concurrent)
    run_config = tune.RunConfig(
        name="tune", storage_path=str(spec.sweep_dir), callbacks=[*callbacks, StateBackup(spec.sweep_dir)],
        stop=stopper, verbose=0,
        failure_config=tune.FailureConfig(max_failures=spec.retries),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    return tune.with_resources(trainable, {"cpu": spec.cpu, "gpu": spec.gpu}), space, tune_config, run_config


def build_tuner(spec: SweepSpec, callbacks: list[Any], stopper: TrialTimeLimit | None,
                completed: Mapping[str, dict[str, Any]] | None = None, stream_output: bool = False) -> tune.Tuner:
    """The Tuner of ``spec``; its experiment lives in ``<sweep>/tune``. ``stream_output``: the
    trials' output also goes to the driver's terminal (``--verbose``)."""
    trainable, space, tune_config, run_config = _configs(spec, callbacks, stopper, completed, stream_output)
    return tune.Tuner(trainable, param_space=space, tune_config=tune_config, run_config=run_config)


def restore_tuner(spec: SweepSpec, callbacks: list[Any], stopper: TrialTimeLimit | None, errored: str,
                  completed: Mapping[str, dict[str, Any]], stream_output: bool = False) -> tune.Tuner:
    """The Tuner of a sweep being resumed, by ``Tuner.restore``.

    ``errored``: ``skip``, ``resume`` (from their last checkpoint) or ``restart`` (from
    scratch). Tune restores the trials, the searcher's state (Optuna's study; the number of
    trials created so far) and the callbacks' from the experiment folder. The settings a
    resume may change (retries, concurrency, the trial time limit, tracking) are put into the
    restored configuration: Tune's public API offers no way to pass them to ``restore``, so
    this sets the restored Tuner's configs (covered by the resume tests, so a Ray upgrade that
    moves them fails loudly). Resources are handled by :func:`set_trial_resources`.
    """
    trainable, _, fresh_tune, fresh_run = _configs(spec, [RestoreGuard(), *callbacks], stopper, completed,
                                                   stream_output)
    tuner = tune.Tuner.restore(str(spec.sweep_dir / "tune"), trainable, resume_unfinished=True,
                               resume_errored=errored == "resume", restart_errored=errored == "restart")
    internal = tuner._local_tuner
    if internal is None:  # Ray Client (ray://): Tune runs the experiment on the head
        raise ConfigError("resume over Ray Client (ray://) is not supported: run `dynsweep resume` on the head "
                          "node with --address auto, or on a node with --address <head ip>:6379")
    run_config = internal.get_run_config()
    run_config.callbacks = fresh_run.callbacks
    run_config.stop = fresh_run.stop
    run_config.failure_config = fresh_run.failure_config
    restored = internal._tune_config
    restored.search_alg = fresh_tune.search_alg  # state restored into it from the experiment folder
    restored.max_concurrent_trials = fresh_tune.max_concurrent_trials
    restored.num_samples = fresh_tune.num_samples
    return tuner


def set_trial_resources(tune_dir: Path, resources: dict[str, float], statuses: tuple[str, ...]) -> int:
    """Give the trials of Tune's last snapshot that will run again new ``resources``.

    Tune keeps each trial's resources in its experiment state; the snapshot is rewritten with
    Tune's own trial (de)serialisation, after a copy of the original goes to
    ``tune/backup/``. Returns the number of trials changed.
    """
    from ray.tune.experiment import Trial

    files = sorted(tune_dir.glob("experiment_state-*.json"))
    if not files:
        return 0
    path = files[-1]
    backup = tune_dir / "backup"
    backup.mkdir(exist_ok=True)
    shutil.copy2(path, backup / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}")
    state = json.loads(path.read_text())
    changed = 0
    for item in state["trial_data"]:
        if json.loads(item[0])["status"] in statuses:
            trial = Trial.from_json_state(item[0], stub=True)
            trial.update_resources(dict(resources))
            trial.stub = False
            item[0] = trial.get_json_state()[0]
            changed += 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
    return changed


class RestoreGuard(tune.Callback):
    """Stops a resume whose restore failed, before any trial runs.

    When Tune cannot restore an experiment's state it logs the error and starts the experiment
    from scratch, under the old sweep's name. For ``dynsweep resume`` that would silently
    rerun everything; this callback raises instead (Tune calls ``setup`` right after the
    restore attempt).
    """

    LOGGER = "ray.tune.execution.tune_controller"

    def __init__(self) -> None:
        self.failure: BaseException | None = None
        self._handler = _Capture(self)
        logger = logging.getLogger(self.LOGGER)
        logger.addHandler(self._handler)
        logger.setLevel(logging.ERROR)
        logger.propagate = False

    def setup(self, **info: Any) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeHandler(self._handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        if self.failure is not None:
            raise ConfigError(f"Tune could not restore the sweep's state, so nothing was run: "
                              f"{type(self.failure).__name__}: {self.failure}")

    def __getstate__(self) -> dict[str, Any]:
        return {"failure": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.failure = None


class _Capture(logging.Handler):
    def __init__(self, guard: RestoreGuard) -> None:
        super().__init__(logging.ERROR)
        self.guard = guard

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Failed to restore") and record.exc_info:
            self.guard.failure = record.exc_info[1]


class Generator(SearchGenerator):
    """Tune's SearchGenerator around a searcher; when a resume restores its state, the current
    ``num_samples`` applies if it is larger (``dynsweep extend``)."""

    def __init__(self, searcher: Any, num_samples: int) -> None:
        super().__init__(searcher)
        self.num_samples = num_samples

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._total_samples = max(self._total_samples, self.num_samples)


class Limiter(ConcurrencyLimiter):
    """Tune's ConcurrencyLimiter, keeping the current limit when a resume restores its state."""

    def set_state(self, state: dict[str, Any]) -> None:
        limit = self.max_concurrent
        super().set_state(state)
        self.max_concurrent = limit


class VariantGenerator(BasicVariantGenerator):
    """Tune's BasicVariantGenerator, keeping the current limit when a resume restores its state."""

    def set_state(self, state: dict[str, Any]) -> None:
        limit = self.max_concurrent
        super().set_state(state)
        self.max_concurrent = limit


class StateBackup(tune.Callback):
    """Every ``every_s`` seconds and at the end, a copy of Tune's state files when they are whole
    (:meth:`search.sweep_folder.SweepFolder.save_tune_state`; ``dynsweep resume`` puts it back
    when a kill or a full disk cut the current state short). Until the first copy is made (Tune
    has not written its state yet), it is tried every second, so that one exists early."""

    def __init__(self, sweep_dir: Path, every_s: float = 10.0) -> None:
        self.sweep_dir = sweep_dir
        self.every_s = every_s
        self._last = -math.inf
        self._saved = False

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        now = time.monotonic()
        if now - self._last >= (self.every_s if self._saved else 1.0):
            self._last = now
            self._saved = SweepFolder(self.sweep_dir).save_tune_state() or self._saved

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        SweepFolder(self.sweep_dir).save_tune_state()
