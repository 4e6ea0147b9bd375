"""A family's checkpoint: one ``checkpoint.pt`` (a dict of tensors and plain values) in the folder
the reporter copies; loaded with ``weights_only=True`` onto the CPU.

:func:`save_training` and :func:`restore_training` are the one way a family stores and resumes
its training state: the step, every stateful part (model, optimiser, learning-rate scheduler,
``torch.Generator``), torch's global random state, and any plain extras. A run resumed from
such a checkpoint continues exactly where the saved one was (the conformance test checks it).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import DataError

CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(DataError):
    """A checkpoint is missing, corrupt, or does not fit the run that loads it; names the file."""


def save(folder: str | Path, state: dict[str, Any]) -> None:
    torch.save(state, Path(folder) / CHECKPOINT_FILE)


def load(folder: str | Path) -> dict[str, Any]:
    """The checkpoint in ``folder``, onto the CPU.

    Raises:
        CheckpointError: missing, unreadable, corrupt (not a torch file, truncated), or holding
            something ``weights_only`` refuses to load.
    """
    path = Path(folder) / CHECKPOINT_FILE
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file" + ("" if Path(folder).is_dir() else
                                                                     f" ({folder} is not a folder)")) from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: a folder, not a checkpoint file") from None
    except OSError as err:
        raise CheckpointError(f"{path}: the checkpoint cannot be read ({err.strerror or err})") from None
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile, UnicodeDecodeError,
            AttributeError, KeyError, TypeError, ImportError, IndexError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated? {first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a dynsweep checkpoint (holds a {type(state).__name__}, not a dict)")
    return state


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
        state = load(folder)
        if not isinstance(state.get("config"), dict):
            raise KeyError(f"{folder}: no config in this checkpoint")
        return dict(state["config"])
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise KeyError(f"{folder}: no config in this checkpoint")
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint config ({err})") from None


def load_parts(folder: str | Path, parts: Mapping[str, Any]) -> dict[str, Any]:
    """Load only ``parts`` (e.g. ``{"model": model}``) from a :func:`save_training` checkpoint, for
    evaluation: nothing else (optimiser, random state) is touched. Returns the whole checkpoint.

    Raises:
        CheckpointError: a part missing, or not fitting the object built from the saved config.
    """
    state = load(folder)
    apply_parts(state, parts, Path(folder) / CHECKPOINT_FILE)
    return state


def apply_parts(state: dict[str, Any], parts: Mapping[str, Any], path: Path) -> None:
    """Load ``state[name]`` into each of ``parts`` (``path``: the file, for the errors).

    Raises:
        CheckpointError: a part missing, or not fitting the object built from the saved config.
    """
    for name, part in parts.items():
        if name not in state:
            raise CheckpointError(f"{path}: not a checkpoint of this family (no {name} in it)")
        try:
            part.load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{path}: its {name!r} does not fit the config it was saved with ({first})") from None


def restore_training(folder: str | Path | None, parts: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Load a :func:`save_training` checkpoint into ``parts`` (same names) and torch's global random
    state; returns ``(step, extras)``, or ``(0, {})`` when ``folder`` is None (a fresh start)."""
    if folder is None:
        return 0, {}
    state = load(folder)
    path = Path(folder) / CHECKPOINT_FILE
    missing = [k for k in [*parts, "torch_rng", "step"] if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this family (no {', '.join(missing)} in it)")
    for name, part in parts.items():
        try:
            if isinstance(part, torch.Generator):
                part.set_state(state.pop(name))
            else:
                part.load_state_dict(state.pop(name))
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{path}: its {name!r} does not fit this run's config ({first})") from None
    try:
        torch.set_rng_state(state.pop("torch_rng"))
        step = int(state.pop("step"))
    except (RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: corrupt random state or step ({err})") from None
    state.pop("config", None)
    return step, state
