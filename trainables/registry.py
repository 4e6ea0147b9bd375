"""The family registry: the one door through which ``search`` reaches the families.

A plain dict from family names to import paths, imported lazily so that ``dynsweep --version``
or a YAML validation does not pay for torch. A family provides:

- ``run(config, reporter)``: train and evaluate one trial (see ``trainables.common.reporter``);
- a config class with ``from_dict(mapping)`` that validates everything a user can get wrong;
- optionally a ``COMMANDS`` dict of ``dynsweep data <name>`` sub-commands;
- optionally ``datasets(config) -> {name: content hash}``: the datasets a trial reads (the
  driver records them so that cluster nodes can check theirs);
- optionally ``describe(path) -> str | None``: one line about a dataset it recognises under the
  datasets folder (``dynsweep data ls``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from trainables.common.errors import ConfigError


@dataclass(frozen=True)
class FamilyEntry:
    run: str
    config: str
    data_cli: str | None = None
    datasets: str | None = None
    describe: str | None = None


FAMILIES: dict[str, FamilyEntry] = {
    "twobody": FamilyEntry(run="trainables.twobody.train:run", config="trainables.twobody.config:TwoBodyConfig",
                           data_cli="trainables.twobody.data_cli", datasets="trainables.twobody.data:dataset_hashes",
                           describe="trainables.twobody.data_cli:describe"),
    "pendulum": FamilyEntry(run="trainables.pendulum.train:run", config="trainables.pendulum.config:PendulumConfig",
                            data_cli="trainables.pendulum.data_cli",
                            datasets="trainables.pendulum.dataset:dataset_hashes",
                            describe="trainables.pendulum.data_cli:describe"),
    "regression": FamilyEntry(run="trainables.regression.train:run",
                              config="trainables.regression.config:RegressionConfig",
                              data_cli="trainables.regression.data_cli",
                              datasets="trainables.regression.data:dataset_hashes",
                              describe="trainables.regression.data_cli:describe"),
    "worldmodels": FamilyEntry(run="trainables.worldmodels.train:run",
                               config="trainables.worldmodels.config:WorldConfig",
                               data_cli="trainables.worldmodels.data_cli",
                               datasets="trainables.worldmodels.data:dataset_hashes",
                               describe="trainables.worldmodels.data_cli:describe"),
    "timestepper": FamilyEntry(run="trainables.timestepper.train:run",
                               config="trainables.timestepper.config:StepperConfig"),
    "dummy": FamilyEntry(run="trainables.dummy.family:run", config="trainables.dummy.family:DummyConfig"),
}
"""Family name -> where its pieces live (``module:attribute``)."""


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def entry(name: str) -> FamilyEntry:
    if name not in FAMILIES:
        raise ConfigError(f"unknown family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def family_run(name: str) -> Callable[..., dict[str, float]]:
    """The ``run(config, reporter)`` of family ``name``."""
    return _load(entry(name).run)


def family_config(name: str) -> Any:
    """The config class of family ``name`` (has ``from_dict`` and ``to_dict``)."""
    return _load(entry(name).config)


def family_datasets(name: str, config: dict[str, Any]) -> dict[str, str]:
    """``{dataset name: content hash}`` of what a trial of family ``name`` with ``config`` reads."""
    path = entry(name).datasets
    return _load(path)(config) if path else {}


def family_describers() -> list[Callable[..., str | None]]:
    """Every family's ``describe(path) -> str | None`` (for ``dynsweep data ls``)."""
    return [_load(fam.describe) for fam in FAMILIES.values() if fam.describe]


def data_commands() -> dict[str, Any]:
    """All ``dynsweep data`` sub-commands of all families, by name, plus ``ls``."""
    from trainables.common.listing import LS

    commands: dict[str, Any] = {"ls": LS}
    for fam in FAMILIES.values():
        if fam.data_cli:
            commands.update(importlib.import_module(fam.data_cli).COMMANDS)
    return commands
