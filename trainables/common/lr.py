"""Learning-rate schedules over a training phase: one rule for the families that schedule by step."""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine")


def scheduled_lr(kind: str, lr: float, min_lr: float, progress: float) -> float:
    """The learning rate at ``progress`` in [0, 1) of a phase: ``lr`` throughout (``constant``), or
    from ``lr`` down to ``min_lr`` along half a cosine (``cosine``)."""
    if kind == "cosine":
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr
