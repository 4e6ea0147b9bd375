"""``--set key=value`` overrides: dotted keys, YAML values, a single value always overrides.

The users' old tool only honoured an override that listed two or more values; here
``--set lr=0.01`` replaces the default exactly like ``--set lr=[0.01, 0.02]`` would. Values
are read by :mod:`search.yaml_io` like the file itself (``--set base.rtol=1e-6`` is a number).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from trainables.common.errors import ConfigError

from .yaml_io import loads


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=[1, 2]"`` -> ``(["a", "b"], [1, 2])`` (the value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    parts = [part.strip() for part in key.strip().split(".")]
    if not sep or not key.strip() or not all(parts):
        raise ConfigError(f"--set {text!r}: expected key=value with a dotted key, e.g. --set base.lr=0.001 "
                          "or --set base.phases.0.steps=500")
    value = loads(raw, f"--set {text!r}: the value") if raw.strip() else ""
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``data`` with every ``key=value`` applied in order (creating nested mappings)."""
    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_index(part, node, text)]
            else:
                if node.get(part) is None:  # missing or null: a new mapping
                    node[part] = {}
                node = node[part]
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {text!r}: {'.'.join(path[:i + 1])} is a value ({node!r}), "
                                  "not a mapping or list"[:300])
        last = path[-1]
        if isinstance(node, list):
            node[_index(last, node, text)] = value
        else:
            node[last] = value
    return out


def _index(part: str, node: list[Any], text: str) -> int:
    if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
        raise ConfigError(f"--set {text!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)
