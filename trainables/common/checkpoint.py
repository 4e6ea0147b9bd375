"""A family's checkpoint: one ``checkpoint.pt`` (a dict of tensors and plain values) in the folder
the reporter copies; loaded with ``weights_only=True`` onto the CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FILE = "checkpoint.pt"


def save(folder: str | Path, state: dict[str, Any]) -> None:
    torch.save(state, Path(folder) / CHECKPOINT_FILE)


def load(folder: str | Path) -> dict[str, Any]:
    return torch.load(Path(folder) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")
