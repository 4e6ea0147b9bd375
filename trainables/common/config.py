"""Typed configs from plain mappings (YAML, ``--set``, Tune's param dicts).

:func:`from_mapping` builds a dataclass from a dict, refusing unknown keys (with a "did you
mean"), checking every value against the field's annotation (``int``, ``float``, ``bool``,
``str``, ``X | None``, ``list[X]``, ``tuple[X, Y]``, nested dataclasses), and naming the key
path in every error. Ints are accepted where floats are expected; nothing else is coerced.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Mapping, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def suggest(name: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: {value!r} is not one of {' | '.join(_type_name(a) for a in args)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_mapping(tp, value, where)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not allowed; allowed: {', '.join(map(repr, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; errors name ``where.key`` and what is allowed."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"{where}: unknown key {k!r}{suggest(str(k), fields)}; "
                          f"known keys: {', '.join(sorted(fields))}")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_mapping(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, YAML/JSON-friendly values (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))


class FamilyConfig:
    """Base of every family's config dataclass: ``from_dict`` (a mapping, or an instance passed
    through) and ``to_dict``. Subclasses validate in ``__post_init__``."""

    @classmethod
    def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
        """Build from a plain mapping (YAML, ``--set`` or a Tune param dict); errors name ``where.key``."""
        return data if isinstance(data, cls) else from_mapping(cls, data, where)

    def to_dict(self) -> dict[str, Any]:
        return to_mapping(self)

    def metric_names(self) -> set[str]:
        """Every metric name a trial with this config reports (``test/...`` ones on the last
        report). Each family must override this: a sweep's metric is checked against it."""
        raise NotImplementedError(f"{type(self).__name__} does not declare metric_names()")


def require_choice(obj: Any, allowed: Mapping[str, typing.Iterable[str]]) -> None:
    """Each ``obj.<key>`` must be one of ``allowed[key]`` (listed in the error in the given order)."""
    for key, values in allowed.items():
        values = tuple(values)
        if getattr(obj, key) not in values:
            raise ConfigError(f"config.{key}: {getattr(obj, key)!r} is not allowed; allowed: {', '.join(values)}")


def require_at_least(obj: Any, keys: typing.Iterable[str], minimum: int = 1) -> None:
    """Each ``obj.<key>`` must be >= ``minimum``."""
    for key in keys:
        if getattr(obj, key) < minimum:
            raise ConfigError(f"config.{key}: {getattr(obj, key)!r} must be >= {minimum}")


def require_positive(obj: Any, keys: typing.Iterable[str]) -> None:
    """Each ``obj.<key>`` must be > 0."""
    for key in keys:
        if not getattr(obj, key) > 0:
            raise ConfigError(f"config.{key}: {getattr(obj, key)!r} must be > 0")
