"""``--set key=value`` overrides: dotted keys, YAML values, a single value always overrides.

The users' old tool only honoured an override that listed two or more values; here
``--set lr=0.01`` replaces the default exactly like ``--set lr=[0.01, 0.02]`` would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import yaml

from trainables.common.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=[1, 2]"`` -> ``(["a", "b"], [1, 2])`` (the value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set lr=0.001 or --set phases.0.steps=500")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {err}") from None
    return [part.strip() for part in key.strip().split(".")], value


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
                if not isinstance(node.get(part, {}), (dict, list)):
                    raise ConfigError(f"--set {text!r}: {'.'.join(path[:i + 1])} is a value, not a mapping")
                node = node.setdefault(part, {})
        last = path[-1]
        if isinstance(node, list):
            node[_index(last, node, text)] = value
        else:
            node[last] = value
    return out


def _index(part: str, node: list[Any], text: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {text!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)
