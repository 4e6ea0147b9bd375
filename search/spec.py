"""Sweep specs: one YAML file per sweep, validated completely before Ray starts.

A spec::

    name: twobody_asha
    family: twobody
    base: {steps: 2000, report_every: 100}        # the family's defaults, overridden
    space:                                        # one entry per swept parameter
      feature: {choice: [sph_4D_rinv_vel, sph_4D_rinv_vel_harmonics]}
      harmonic_order: {randint: [2, 9], when: {feature: sph_4D_rinv_vel_harmonics}}
      lr: {loguniform: [1.0e-4, 1.0e-2]}
      width: {qrandint: [16, 64, 16]}
      segment_length: {grid: [4, 10, 18]}
      depth: 2                                    # a plain value: fixed
    search: {algorithm: optuna, seed: 0, metric: val_loss, mode: min, num_samples: 20,
             show: [test/complex_TBP_planar_10/accel_err_mean]}   # extra columns in the summary
    scheduler: {type: asha, grace_period: 200, reduction_factor: 3, max_t: 2000, time_attr: step}
    resources: {cpu: 1, gpu: 0.25}
    max_concurrent: 2
    retries: 1
    trial_time_limit_s: 3600
    tracking: {uri: null, experiment: null, artifacts: all}   # null: sqlite in the sweep folder;
                                                  # experiment = name; artifacts: all | model | none
    storage: runs
    replicates: 1                                 # seeds per trial, trained as one vectorised model
                                                  # (families that support it; ranked by their mean)

Distributions (each a mapping with exactly one of these keys, plus an optional ``when``):
``choice: [v, ...]``, ``grid: [v, ...]``, ``uniform: [low, high]``, ``loguniform: [low, high]``,
``randint: [low, high]`` (high exclusive), ``qrandint: [low, high, q]`` (high inclusive).
``when: {param: value or [values]}`` makes a parameter exist only when another has one of the
given values (Optuna asks for it only then; other searchers leave it at the base value).

Every error names the file, the key, the value and what is allowed. The YAML is read by
:mod:`search.yaml_io` (numbers such as ``1e-6`` are numbers; non-string keys, deep nesting, huge
lists and alias bombs are refused); the ``name`` must be a safe folder name (:data:`NAME_RE`);
``when`` conditions may not form a cycle; a dataset the sweep names that exists but cannot be
read is refused; ``scheduler.max_t`` beyond the trial's length is a warning (``warnings``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import sys
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.common.config import FamilyConfig, _convert, suggest
from trainables.common.errors import ConfigError, DynsweepError
from trainables.common.replicates import check_replicates
from trainables.registry import FAMILIES, check_replicates_supported, family_config, family_trial_length

from .datasets_check import check_datasets, datasets_root, strings_in
from .examples_cmd import resolve_spec
from .overrides import apply_overrides
from .yaml_io import MAX_ITEMS, load_file

NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
"""A sweep name: a folder name under ``storage`` (no ``..``, no leading ``.``, at most 100 characters)."""
DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint", "qrandint")
ALGORITHMS = ("optuna", "random", "grid")
SCHEDULERS = ("asha", "fifo")
ARTIFACT_POLICIES = ("all", "model", "none")
TOP_KEYS = ("name", "family", "base", "space", "search", "scheduler", "resources", "max_concurrent", "retries",
            "trial_time_limit_s", "tracking", "storage", "reuse_actors", "replicates")
SECTION_KEYS = {
    "search": ("algorithm", "seed", "metric", "mode", "num_samples", "points_to_evaluate", "show"),
    "scheduler": ("type", "grace_period", "reduction_factor", "max_t", "time_attr"),
    "resources": ("cpu", "gpu"),
    "tracking": ("uri", "experiment", "artifacts"),
}


@dataclass(frozen=True)
class Param:
    """One swept parameter: ``kind`` in DISTRIBUTIONS or ``fixed``; ``args`` its values/bounds."""

    name: str
    kind: str
    args: tuple[Any, ...]
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def active(self, values: dict[str, Any]) -> bool:
        """Whether this parameter exists given the other parameters' ``values``."""
        return all(values.get(k) in v for k, v in self.when.items())

    def candidates(self) -> list[Any]:
        """Values to check against the family's config: every choice, or the range's ends."""
        if self.kind in ("choice", "grid"):
            return list(self.args)
        if self.kind == "fixed":
            return [self.args[0]]
        if self.kind == "randint":
            return [self.args[0], self.args[1] - 1]
        return [self.args[0], self.args[1]]


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (see the module docstring)."""

    path: str
    name: str
    family: str
    base: dict[str, Any]
    params: tuple[Param, ...]
    algorithm: str = "optuna"
    seed: int = 0
    metric: str = "loss"
    mode: str = "min"
    num_samples: int = 10
    points_to_evaluate: tuple[dict[str, Any], ...] = ()
    show: tuple[str, ...] = ()
    """Reported metrics printed beside ``metric`` in the end-of-sweep summary and summary.csv."""
    scheduler: str = "fifo"
    grace_period: int = 1
    reduction_factor: float = 3.0
    max_t: int = 100
    time_attr: str = "training_iteration"
    cpu: float = 1.0
    gpu: float = 0.0
    max_concurrent: int = 2
    retries: int = 0
    trial_time_limit_s: float | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    artifacts: str = "all"
    """What a trial sends to the tracking store at its end: ``all`` (its final checkpoint folder with
    the artefacts, and the model), ``model`` (the MLflow model only) or ``none``."""
    storage: str = "runs"
    reuse_actors: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """The YAML document as validated, overrides applied (recorded with the sweep)."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """Things that are allowed but probably not meant (one line each, naming file and key)."""

    def total_trials(self) -> int:
        """How many trials the sweep runs: ``num_samples``, times the grid's size without Optuna."""
        if self.algorithm == "optuna":
            return self.num_samples
        size = 1
        for p in self.params:
            if p.kind == "grid" or (self.algorithm == "grid" and p.kind == "choice"):
                size *= len(p.args)
        return self.num_samples * size

    @property
    def sweep_dir(self) -> Path:
        """The absolute folder of this sweep's state, Ray temp files and default MLflow store."""
        return (Path(self.storage) / self.name).resolve()


def _err(path: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}")


def _check_keys(path: str, where: str, data: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    for key in data:
        if key not in allowed:
            raise _err(path, f"{where}{key}", f"unknown key{suggest(str(key), allowed)}; "
                                              f"allowed: {', '.join(allowed)}")


def _number(path: str, key: str, value: Any, integer: bool = False) -> Any:
    """``value`` as a number (an integer with ``integer``: ``1e3`` is 1000); else an error naming
    ``key`` and the type expected."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and (not integer or value.is_integer())
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise _err(path, key, f"{shown} is not {'an integer' if integer else 'a number'} "
                              f"(expected {'an integer, e.g. 3' if integer else 'a number, e.g. 0.5 or 1e-3'})")
    return int(value) if integer else value


def _text(path: str, key: str, value: Any, optional: bool = False) -> Any:
    """``value`` if it is a string (or None with ``optional``); else an error naming ``key``."""
    if (value is None and optional) or isinstance(value, str):
        return value
    raise _err(path, key, f"expected a string{' or null' if optional else ''}, got {value!r}"[:200])


def parse_param(path: str, name: str, raw: Any) -> Param:
    """One ``space`` entry -> :class:`Param` (shape checks only; values are checked later)."""
    key = f"space.{name}"
    if not isinstance(raw, dict):
        return Param(name, "fixed", (raw,))
    when_raw = raw.get("when", {})
    dists = [k for k in raw if k != "when"]
    if len(dists) != 1 or dists[0] not in DISTRIBUTIONS:
        unknown = [k for k in dists if k not in DISTRIBUTIONS]
        hint = suggest(str(unknown[0]), DISTRIBUTIONS) if unknown else ""
        raise _err(path, key, f"needs exactly one distribution{hint}; allowed: {', '.join(DISTRIBUTIONS)} "
                              f"(plus an optional `when`), got {sorted(map(str, dists))}")
    kind = dists[0]
    args = raw[kind]
    if not isinstance(args, list):
        raise _err(path, f"{key}.{kind}", f"expected a list, got {args!r}")
    if kind in ("choice", "grid"):
        if not args:
            raise _err(path, f"{key}.{kind}", "is empty; give at least one value")
        if len(args) > MAX_ITEMS:
            raise _err(path, f"{key}.{kind}", f"{len(args)} values; at most {MAX_ITEMS} (use a range such as "
                                              "uniform, loguniform or randint)")
    else:
        n = 3 if kind == "qrandint" else 2
        if len(args) != n:
            shape = "[low, high, q]" if n == 3 else "[low, high]"
            raise _err(path, f"{key}.{kind}", f"expected {shape}, got {args!r}")
        integer = kind in ("randint", "qrandint")
        low, high = (_number(path, f"{key}.{kind}", v, integer) for v in args[:2])
        if not low < high:
            raise _err(path, f"{key}.{kind}", f"bounds reversed or empty: low={low} must be < high={high}")
        if kind == "loguniform" and low <= 0:
            raise _err(path, f"{key}.{kind}", f"loguniform needs low > 0, got {low}")
        if kind == "qrandint":
            q = _number(path, f"{key}.{kind}", args[2], True)
            if q < 1 or (high - low) % q:
                raise _err(path, f"{key}.{kind}", f"q={args[2]} must be >= 1 and divide high - low = {high - low}")
            args = [low, high, q]
        elif integer:
            args = [low, high]
    if not isinstance(when_raw, dict) or not when_raw:
        if "when" in raw:
            raise _err(path, f"{key}.when", f"expected a mapping {{param: value or [values]}}, got {when_raw!r}")
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in when_raw.items()}
    for other, values in when.items():
        if not values:
            raise _err(path, f"{key}.when.{other}", "is an empty list; give a value or a list of values")
    return Param(name, kind, tuple(args), when)


def load_spec(path: str | os.PathLike[str], overrides: Iterable[str] = (), warn: bool = True) -> SweepSpec:
    """Read, override and validate a sweep YAML; raises :class:`ConfigError` naming file and key.

    ``path`` is a file, or the name of a shipped search space (``quickstart``). With ``warn``
    the spec's warnings are printed to stderr, one line each."""
    p = str(resolve_spec(path))
    raw = load_file(p)
    if raw is None:
        raise ConfigError(f"{p}: is empty; a sweep YAML is a mapping with name, family, base, space, search, ...")
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    spec = validate(raw, p)
    if warn:
        for line in spec.warnings:
            print(f"dynsweep: warning: {line}", file=sys.stderr)
    return spec


def validate(raw: dict[str, Any], path: str = "<spec>") -> SweepSpec:
    """Check everything a user can get wrong and build the :class:`SweepSpec`."""
    raw = copy.deepcopy(raw)
    _check_keys(path, "", raw, TOP_KEYS)
    for key in ("name", "family"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _err(path, key, f"is required (a non-empty string), got {raw.get(key)!r}"[:300])
    if not NAME_RE.fullmatch(raw["name"]) or ".." in raw["name"]:
        raise _err(path, "name", f"{raw['name']!r} is not a safe folder name: use letters, digits, '-', '_' and "
                                 "'.' (not first, no '..'), at most 100 characters"[:400])
    family = raw["family"]
    if family not in FAMILIES:
        raise _err(path, "family", f"unknown family {family!r}{suggest(family, FAMILIES)}; "
                                   f"known: {', '.join(sorted(FAMILIES))}")
    sections: dict[str, dict[str, Any]] = {}
    for section, keys in SECTION_KEYS.items():
        value = raw.get(section) or {}
        if not isinstance(value, dict):
            raise _err(path, section, f"expected a mapping, got {value!r}"[:300])
        _check_keys(path, f"{section}.", value, keys)
        sections[section] = value
    base = raw.get("base") or {}
    space = raw.get("space") or {}
    for key, value in (("base", base), ("space", space)):
        if not isinstance(value, dict):
            raise _err(path, key, f"expected a mapping, got {value!r}"[:300])
    params = tuple(parse_param(path, str(name), value) for name, value in space.items())
    base = _with_replicates(path, family, base, raw.get("replicates"))

    config_cls = family_config(family)
    try:
        base_cfg = config_cls.from_dict(base, where="base")
    except DynsweepError as err:
        raise ConfigError(f"{path}: {err}") from None
    known_keys = set(base_cfg.to_dict())
    by_name = {p.name: p for p in params}
    # Each value a parameter can take is checked in the context of the trials that use it: the
    # base, the fixed values and (for a conditional parameter) the values that make it exist.
    length_of = family_trial_length(family)
    fixed = {p.name: p.args[0] for p in params if p.kind == "fixed"}
    for param in params:
        if param.kind == "fixed":
            _check_name(path, family, param, known_keys)
            _checked_configs(path, family, config_cls, base, param)
    try:
        resolved = config_cls.from_dict({**base, **fixed}, where="config")
    except DynsweepError as err:
        raise _err(path, "space", f"the fixed values {sorted(fixed)} are refused together by the {family} "
                                  f"family: {err}") from None
    lengths = {_length(length_of, resolved)}
    for param in params:
        if param.kind == "fixed":
            continue
        _check_name(path, family, param, known_keys)
        for other, values in param.when.items():
            if other not in by_name:
                raise _err(path, f"space.{param.name}.when.{other}", f"is not a swept parameter; swept: "
                                                                     f"{', '.join(sorted(by_name))}")
            allowed = _values_of(by_name[other])
            if allowed is not None:
                bad = _missing(values, allowed)
                if bad:
                    shown = allowed if len(allowed) <= 20 else [*allowed[:20], "..."]
                    raise _err(path, f"space.{param.name}.when.{other}", f"{bad[0]!r} is never a value of {other}; "
                                                                         f"its values: {shown}")
        context = {**base, **fixed}
        for other, values in param.when.items():  # check in the context where the parameter exists
            context[other] = values[0]
        lengths |= _checked_configs(path, family, config_cls, context, param, length_of)
    _check_when_cycles(path, params)

    search = sections["search"]
    algorithm = search.get("algorithm", "optuna")
    if algorithm not in ALGORITHMS:
        raise _err(path, "search.algorithm", f"{algorithm!r} is not allowed; allowed: {', '.join(ALGORITHMS)}")
    mode = search.get("mode", "min")
    if mode not in ("min", "max"):
        raise _err(path, "search.mode", f"{mode!r} is not allowed; allowed: min, max")
    metric = search.get("metric")
    reported = base_cfg.metric_names()
    if not isinstance(metric, str) or metric not in reported:
        raise _err(path, "search.metric", f"{metric!r} is never reported by the {family} family"
                                          f"{suggest(str(metric), reported)}; it reports e.g. "
                                          f"{', '.join(sorted(reported)[:8])}")
    show = search.get("show") or []
    if isinstance(show, str):
        show = [show]
    if not isinstance(show, list) or not all(isinstance(m, str) for m in show):
        raise _err(path, "search.show", f"expected a list of metric names, got {show!r}"[:200])
    for m in show:
        if m not in reported:
            raise _err(path, "search.show", f"{m!r} is never reported by the {family} family{suggest(m, reported)}")
    seed = _number(path, "search.seed", search.get("seed", 0), integer=True)
    num_samples = _number(path, "search.num_samples", search.get("num_samples", 1 if algorithm == "grid" else 10),
                          integer=True)  # with grid: repeats of the whole grid
    if num_samples < 1:
        raise _err(path, "search.num_samples", f"{num_samples} must be >= 1")
    if algorithm == "grid":
        loose = [p.name for p in params if p.kind not in ("grid", "choice", "fixed")]
        if loose:
            raise _err(path, "search.algorithm", f"grid search needs grid/choice parameters only; "
                                                 f"{', '.join(loose)} are continuous")
    points = search.get("points_to_evaluate") or []
    if not isinstance(points, list) or not all(isinstance(pt, dict) for pt in points):
        raise _err(path, "search.points_to_evaluate", "expected a list of {param: value} mappings")
    for i, point in enumerate(points):
        for key in point:
            if key not in by_name:
                raise _err(path, f"search.points_to_evaluate[{i}].{key}", f"is not a swept parameter"
                                                                          f"{suggest(str(key), by_name)}")

    sched = sections["scheduler"]
    scheduler = sched.get("type", "fifo")
    if scheduler not in SCHEDULERS:
        raise _err(path, "scheduler.type", f"{scheduler!r} is not allowed; allowed: {', '.join(SCHEDULERS)}")
    grace = _number(path, "scheduler.grace_period", sched.get("grace_period", 1), integer=True)
    max_t = _number(path, "scheduler.max_t", sched.get("max_t", 100), integer=True)
    factor = _number(path, "scheduler.reduction_factor", sched.get("reduction_factor", 3))
    if scheduler == "asha":
        if not 1 <= grace <= max_t:
            raise _err(path, "scheduler.grace_period", f"{grace} must be in [1, max_t={max_t}]")
        if factor <= 1:
            raise _err(path, "scheduler.reduction_factor", f"{factor} must be > 1")
    time_attr = sched.get("time_attr", "training_iteration")
    if not isinstance(time_attr, str) or time_attr not in reported | {"training_iteration", "time_total_s"}:
        raise _err(path, "scheduler.time_attr", f"{time_attr!r} is never reported; use step, training_iteration "
                                                "or time_total_s")
    warnings = []
    if scheduler == "asha":
        warning = _max_t_warning(path, max_t, time_attr, lengths)
        if warning:
            warnings.append(warning)

    res = sections["resources"]
    cpu = _number(path, "resources.cpu", res.get("cpu", 1))
    gpu = _number(path, "resources.gpu", res.get("gpu", 0))
    if cpu <= 0:
        raise _err(path, "resources.cpu", f"{cpu} must be > 0")
    if gpu < 0 or (gpu > 1 and gpu != int(gpu)):
        raise _err(path, "resources.gpu", f"{gpu} must be a fraction in [0, 1] or a whole number of GPUs")
    max_concurrent = _number(path, "max_concurrent", raw.get("max_concurrent", 2), integer=True)
    retries = _number(path, "retries", raw.get("retries", 0), integer=True)
    if max_concurrent < 1 or retries < 0:
        raise _err(path, "max_concurrent" if max_concurrent < 1 else "retries", "must be >= 1 (max_concurrent) "
                                                                               "and >= 0 (retries)")
    limit = raw.get("trial_time_limit_s")
    if limit is not None and _number(path, "trial_time_limit_s", limit) <= 0:
        raise _err(path, "trial_time_limit_s", f"{limit} must be > 0")
    tracking = sections["tracking"]
    uri = _text(path, "tracking.uri", tracking.get("uri"), optional=True)
    experiment = _text(path, "tracking.experiment", tracking.get("experiment"), optional=True)
    artifacts = tracking.get("artifacts", "all")
    if artifacts not in ARTIFACT_POLICIES:
        raise _err(path, "tracking.artifacts", f"{artifacts!r} is not allowed; allowed: {', '.join(ARTIFACT_POLICIES)} "
                                               "(all: checkpoints, artefacts and the model; model: the model only; none)")
    storage = raw.get("storage")
    storage = "runs" if storage is None else str(storage) if type(storage) is int else storage  # --storage 2024
    storage = _text(path, "storage", storage)
    if not storage:
        raise _err(path, "storage", "is empty; give a folder (default: runs)")
    reuse_actors = raw.get("reuse_actors", False)
    if not isinstance(reuse_actors, bool):
        raise _err(path, "reuse_actors", f"expected true or false, got {reuse_actors!r}"[:200])

    texts = [s for p in params if p.kind != "fixed" for s in strings_in(list(p.args))]
    resolved_dict = resolved.to_dict()
    check_datasets(path, family, [*strings_in(resolved_dict), *texts], datasets_root(resolved_dict),
                   resolved_dict)
    return SweepSpec(
        path=path, name=raw["name"], family=family, base=base, params=params, algorithm=algorithm,
        seed=seed, metric=metric, mode=mode, num_samples=int(num_samples), show=tuple(show),
        points_to_evaluate=tuple(points), scheduler=scheduler, grace_period=int(grace),
        reduction_factor=float(factor), max_t=int(max_t), time_attr=time_attr, cpu=float(cpu), gpu=float(gpu),
        max_concurrent=int(max_concurrent), retries=int(retries),
        trial_time_limit_s=float(limit) if limit is not None else None,
        tracking_uri=uri, experiment=experiment, artifacts=artifacts,
        storage=storage, reuse_actors=reuse_actors, raw=raw, warnings=tuple(warnings))


def _with_replicates(path: str, family: str, base: dict[str, Any], replicates: Any) -> dict[str, Any]:
    """``base`` with the top-level ``replicates`` (seeds per trial) as the config key every trial gets.

    Raises:
        ConfigError: not an integer >= 1, a family that does not train replicates, or a different
            ``base.replicates``.
    """
    if replicates is None:
        return base
    try:
        check_replicates(replicates)
        check_replicates_supported(family, replicates)
    except ConfigError as err:
        raise _err(path, "replicates", str(err).removeprefix("config.replicates: ")[:300]) from None
    if "replicates" in base and base["replicates"] != replicates:
        raise _err(path, "replicates", f"{replicates} differs from base.replicates={base['replicates']!r}; give one")
    return {**base, "replicates": replicates} if replicates > 1 or "replicates" in base else base


def _check_name(path: str, family: str, param: Param, known_keys: set[str]) -> None:
    if param.name not in known_keys:
        raise _err(path, f"space.{param.name}", f"is not a {family} config key{suggest(param.name, known_keys)}")


def _missing(values: Iterable[Any], allowed: list[Any]) -> list[Any]:
    """The ``values`` not in ``allowed`` (a set lookup where the values are hashable: linear)."""
    hashable: set[Any] = set()
    others: list[Any] = []
    for a in allowed:
        try:
            hashable.add(a)
        except TypeError:
            others.append(a)
    out = []
    for v in values:
        try:
            if v in hashable:
                continue
        except TypeError:
            pass
        if v not in others:
            out.append(v)
    return out


def _check_when_cycles(path: str, params: tuple[Param, ...]) -> None:
    """Refuse ``when`` conditions that depend on each other in a cycle (a: when b, b: when a)."""
    deps = {p.name: list(p.when) for p in params}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in deps:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(deps[start]))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                names = [n for n, _ in stack]
                cycle = names[names.index(child):] + [child]
                raise _err(path, f"space.{cycle[0]}.when", f"conditions form a cycle: {' -> '.join(cycle)} "
                                                          "(each exists only when the next has a value); "
                                                          "a parameter cannot depend on itself")
            elif child in deps and not state.get(child):
                state[child] = 1
                stack.append((child, iter(deps[child])))


def _fast_builder(config_cls: Any, name: str) -> Callable[[Any, Any], Any] | None:
    """Build a config differing from another in ``name`` only: the same checks as ``from_dict``
    (type conversion, ``__post_init__``) without resolving the type hints again (a big ``choice``
    list stays linear and fast)."""
    from_dict = getattr(config_cls.from_dict, "__func__", None)
    if from_dict is not FamilyConfig.from_dict.__func__ or not dataclasses.is_dataclass(config_cls):
        return None
    if name not in {f.name for f in dataclasses.fields(config_cls) if f.init}:
        return None
    hint = typing.get_type_hints(config_cls)[name]
    names = [f.name for f in dataclasses.fields(config_cls) if f.init]
    kwargs: dict[str, Any] = {}

    def build(first: Any, value: Any) -> Any:  # dataclasses.replace, with the other fields read once
        if not kwargs:
            kwargs.update({n: getattr(first, n) for n in names})
        return config_cls(**{**kwargs, name: _convert(value, hint, f"config.{name}")})

    return build


def _checked_configs(path: str, family: str, config_cls: Any, context: dict[str, Any], param: Param,
                     length_of: Callable[[Any], dict[str, int] | None] | None = None) -> set[tuple[int, int] | None]:
    """Build the family's config for each distinct candidate value of ``param`` in ``context`` (a
    value the family refuses is an error naming the parameter); returns the trial lengths seen."""
    first = None
    lengths: set[tuple[int, int] | None] = set()
    seen: set[Any] = set()
    fast = _fast_builder(config_cls, param.name) if len(param.args) > 1 else None
    for value in param.candidates():
        try:
            key = (type(value), value)
            if key in seen:
                continue
            seen.add(key)
        except TypeError:  # unhashable: checked every time
            pass
        try:
            if first is not None and fast is not None:
                cfg = fast(first, value)
            else:
                cfg = config_cls.from_dict({**context, param.name: value}, where="config")
        except DynsweepError as err:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise _err(path, f"space.{param.name}",
                       f"value {shown} is refused by the {family} family: {err}") from None
        first = cfg if first is None else first
        lengths.add(_length(length_of, cfg))
    return lengths


def _length(length_of: Callable[[Any], dict[str, int] | None] | None, cfg: Any) -> tuple[int, int] | None:
    """``(reports, last step)`` of a trial with ``cfg`` trained to its end, or None if not known."""
    if length_of is None:
        return None
    try:
        length = length_of(cfg)
    except DynsweepError:
        return None
    if not length:
        return None
    return int(length["training_iteration"]), int(length["step"])


def _max_t_warning(path: str, max_t: int, time_attr: str, lengths: set[tuple[int, int] | None]) -> str | None:
    """A warning when every trial ends before ASHA's ``max_t`` (None when lengths vary or are unknown)."""
    if len(lengths) != 1 or None in lengths or time_attr not in ("training_iteration", "step"):
        return None
    reports, last_step = next(iter(lengths))  # type: ignore[misc]
    length = reports if time_attr == "training_iteration" else last_step
    if max_t <= length:
        return None
    unit = (f"{reports} reports, the last at step {last_step}" if time_attr == "training_iteration"
            else f"its last report is at step {last_step}, {reports} reports")
    return (f"{path}: scheduler.max_t={max_t} exceeds the trial length ({unit}; time_attr={time_attr}); "
            f"ASHA's rungs beyond {length} are never reached, so it stops fewer trials than planned, and trials "
            f"that train to the end are recorded as completed; set scheduler.max_t: {length}")


def _values_of(param: Param) -> list[Any] | None:
    if param.kind in ("choice", "grid"):
        return list(param.args)
    if param.kind == "fixed":
        return [param.args[0]]
    return None


def check_resources(spec: SweepSpec, cpus: float, gpus: float, where: str = "this machine") -> None:
    """Refuse per-trial resources that ``cpus``/``gpus`` can never satisfy."""
    if spec.cpu > cpus:
        raise _err(spec.path, "resources.cpu", f"{spec.cpu:g} CPUs per trial, but {where} has {cpus:g}")
    if spec.gpu > gpus:
        raise _err(spec.path, "resources.gpu", f"{spec.gpu:g} GPU per trial, but {where} has {gpus:g} "
                                               "(set resources.gpu: 0, or run on a machine or cluster with GPUs)")
