"""The family registry: the one door through which ``search`` reaches the families.

Plain dicts from names to import paths, imported lazily so that ``dynsweep --version`` or a
YAML validation does not pay for torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from trainables.common.errors import ConfigError

FAMILIES: dict[str, str] = {"twobody": "trainables.twobody"}
"""Family name -> package implementing it."""

DATA_CLIS: tuple[str, ...] = ("trainables.twobody.data_cli",)
"""Modules whose ``COMMANDS`` dict adds ``dynsweep data <command>`` sub-commands."""


def family(name: str) -> ModuleType:
    """Import and return the package of family ``name``."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(FAMILIES[name])


def data_commands() -> dict[str, object]:
    """All ``dynsweep data`` sub-commands of all families, by name."""
    commands: dict[str, object] = {}
    for path in DATA_CLIS:
        commands.update(importlib.import_module(path).COMMANDS)
    return commands
