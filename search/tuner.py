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

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

from .spec import Param, SweepSpec
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
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(space=OptunaSpace(spec.params), metric=spec.metric, mode=spec.mode,
                                points_to_evaluate=list(spec.points_to_evaluate) or None,
                                sampler=optuna.samplers.TPESampler(seed=spec.seed))
        return ConcurrencyLimiter(searcher, max_concurrent=spec.max_concurrent), {}
    generator = BasicVariantGenerator(points_to_evaluate=list(spec.points_to_evaluate) or None,
                                      max_concurrent=spec.max_concurrent, random_state=spec.seed)
    return generator, tune_space(spec.params, grid=spec.algorithm == "grid")


def build_scheduler(spec: SweepSpec) -> Any:
    if spec.scheduler == "asha":
        return ASHAScheduler(time_attr=spec.time_attr, metric=spec.metric, mode=spec.mode, max_t=spec.max_t,
                             grace_period=spec.grace_period, reduction_factor=spec.reduction_factor)
    return FIFOScheduler()


def build_tuner(spec: SweepSpec, callbacks: list[Any], stopper: TrialTimeLimit | None) -> tune.Tuner:
    """The Tuner of ``spec``; its experiment lives in ``<sweep>/tune``."""
    searcher, space = build_searcher(spec)
    trainable = make_trainable(spec.family, spec.base, spec.cpu, spec.gpu, [p for p in spec.params if p.when])
    resources = {"cpu": spec.cpu, "gpu": spec.gpu}
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=space,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=build_scheduler(spec),
                                    num_samples=spec.num_samples, reuse_actors=spec.reuse_actors,
                                    max_concurrent_trials=spec.max_concurrent),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(spec.sweep_dir), callbacks=callbacks, stop=stopper, verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )
