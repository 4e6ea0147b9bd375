"""A family's checkpoint: one ``checkpoint.pt`` (a dict of tensors and plain values) in the folder
the reporter copies; loaded with ``weights_only=True`` onto the CPU.

:func:`save_training` and :func:`restore_training` are the one way a family stores and resumes
its training state: the step, every stateful part (model, optimiser, learning-rate scheduler,
``torch.Generator``), torch's global random state, and any plain extras. A run resumed from
such a checkpoint continues exactly where the saved one was (the conformance test checks it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

CHECKPOINT_FILE = "checkpoint.pt"


def save(folder: str | Path, state: dict[str, Any]) -> None:
    torch.save(state, Path(folder) / CHECKPOINT_FILE)


def load(folder: str | Path) -> dict[str, Any]:
    return torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")


def _state(part: Any) -> Any:
    return part.get_state() if isinstance(part, torch.Generator) else part.state_dict()


def save_training(folder: str | Path, step: int, parts: Mapping[str, Any], config: Mapping[str, Any],
                  **extra: Any) -> None:
    """Save ``step``, the state of each of ``parts`` (objects with ``state_dict`` or generators),
    torch's global random state, the run's full ``config`` (``cfg.to_dict()``: what produced the
    checkpoint, see :func:`saved_config`) and the plain ``extra`` values into ``folder``."""
    save(folder, {"step": step, "torch_rng": torch.get_rng_state(), **extra, "config": dict(config),
                  **{name: _state(part) for name, part in parts.items()}})


def saved_config(folder: str | Path) -> dict[str, Any]:
    """The full config a checkpoint was trained with: from a :func:`save_training` checkpoint, or
    from ``config.json`` in the folder (families that keep no torch state, like the dummy).

    Raises:
        KeyError: the checkpoint holds no config.
    """
    if (Path(folder) / CHECKPOINT_FILE).is_file():
        return dict(load(folder)["config"])
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise KeyError(f"{folder}: no config in this checkpoint")
    return dict(json.loads(path.read_text()))


def restore_training(folder: str | Path | None, parts: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Load a :func:`save_training` checkpoint into ``parts`` (same names) and torch's global random
    state; returns ``(step, extras)``, or ``(0, {})`` when ``folder`` is None (a fresh start)."""
    if folder is None:
        return 0, {}
    state = load(folder)
    for name, part in parts.items():
        if isinstance(part, torch.Generator):
            part.set_state(state.pop(name))
        else:
            part.load_state_dict(state.pop(name))
    torch.set_rng_state(state.pop("torch_rng"))
    state.pop("config", None)
    return int(state.pop("step")), state
