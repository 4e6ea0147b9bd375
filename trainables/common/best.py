"""The best-on-validation model and patience-based early stopping: one rule for every family.

At each report a family hands its validation value to :meth:`BestModel.observe`. A lower value
than any before keeps a copy of the model's weights (``best_step`` says from which step) and
resets the count of reports without improvement; otherwise the count grows, and once it reaches
``patience`` (0: never) :attr:`BestModel.stop` is true. At the end of training (or of a
curriculum phase) the family loads the kept weights back (:meth:`BestModel.restore`) and
evaluates those: the final ``test/`` metrics describe the best-on-validation model, and the final
checkpoint holds it. A run without validation data (the value is NaN) keeps the latest model.

The state (:meth:`BestModel.state`) goes into every checkpoint as the extra ``best``, so a
resumed run keeps the same best model and patience count as an uninterrupted one. A run without
validation data keeps its latest model, and patience never stops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .errors import ConfigError


@dataclass
class BestModel:
    """The best validation value so far, the weights that reached it, and the patience count.

    Attributes:
        patience: reports without a lower validation value after which :attr:`stop` is true (0: never).
        best_val: the lowest validation value seen (inf before the first report).
        best_step: the optimiser step of that report.
        bad_reports: reports since the last improvement.
        weights: a copy of the model's ``state_dict`` at ``best_step`` (None before the first report).
    """

    patience: int = 0
    best_val: float = math.inf
    best_step: int = 0
    bad_reports: int = 0
    weights: dict[str, torch.Tensor] | None = None

    def observe(self, value: float, step: int, model: torch.nn.Module) -> bool:
        """Record the validation ``value`` at ``step``; returns whether it is the best so far.

        NaN means "no validation value": before any finite value (a run without validation data)
        the latest model is kept and patience does not count; after one, a NaN is a report without
        improvement (it never replaces a finite best)."""
        if math.isnan(value):
            if math.isinf(self.best_val):
                self.best_step, self.weights = step, self._copy(model)
                return True
            self.bad_reports += 1
            return False
        if value < self.best_val:
            self.best_val, self.best_step, self.bad_reports, self.weights = value, step, 0, self._copy(model)
            return True
        self.bad_reports += 1
        return False

    @staticmethod
    def _copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    @property
    def stop(self) -> bool:
        """Whether ``patience`` reports in a row brought no improvement."""
        return self.patience > 0 and self.bad_reports >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best weights into ``model`` (nothing when none were kept yet)."""
        if self.weights is not None:
            model.load_state_dict(self.weights)

    def reset(self) -> None:
        """Forget the best so far (a new curriculum phase: its validation values are not comparable)."""
        self.best_val, self.best_step, self.bad_reports, self.weights = math.inf, 0, 0, None

    def metrics(self, name: str, stopped: bool) -> dict[str, float]:
        """``best_<name>``, ``best_step`` and ``stopped_early`` (1.0 when patience ended training)."""
        return {f"best_{name}": self.best_val, "best_step": float(self.best_step), "stopped_early": float(stopped)}

    def state(self) -> dict[str, Any]:
        """Plain values and tensors for a checkpoint (``weights_only`` loads them)."""
        return {"best_val": self.best_val, "best_step": self.best_step, "bad_reports": self.bad_reports,
                "weights": self.weights}

    @classmethod
    def from_state(cls, patience: int, state: Any) -> "BestModel":
        """The tracker a checkpoint saved (``state``), or a fresh one when ``state`` is None. Older
        checkpoints are read too: a plain best value (regression) and the pendulum's ``best_model``
        layout (its extras passed whole)."""
        if state is None or (isinstance(state, dict) and not state):
            return cls(patience)
        if isinstance(state, (int, float)):
            return cls(patience, float(state))
        weights = state.get("weights", state.get("best_model"))
        return cls(patience, float(state.get("best_val", math.inf)), int(state.get("best_step", 0)),
                   int(state.get("bad_reports", 0)), weights)



def load_evaluated(folder: str | Path, model: torch.nn.Module, name: str = "model") -> None:
    """Load into ``model`` the weights a checkpoint's evaluation uses (``dynsweep evaluate``): the
    best-on-validation model the checkpoint carries (a trial that ASHA stopped, or that was
    interrupted, saved its latest weights as ``name``), else ``name`` (at the end of training the
    two are the same).

    Raises:
        CheckpointError: no such part, or it does not fit ``model``.
    """
    checkpoint.apply_parts(evaluated_state(folder, name), {name: model}, Path(folder) / checkpoint.CHECKPOINT_FILE)


def evaluated_state(folder: str | Path, name: str = "model") -> dict[str, Any]:
    """The checkpoint in ``folder`` with ``name`` set to the weights its evaluation uses (see
    :func:`load_evaluated`): the best-on-validation model when it carries one.

    Raises:
        CheckpointError: missing or unreadable.
    """
    state = checkpoint.load(folder)
    best = state.get("best")
    if isinstance(best, dict) and best.get("weights") is not None:
        state = {**state, name: best["weights"]}
    return state


def check_stopping(patience: int, min_lr: float, lr: float) -> None:
    """Validate the shared options: ``patience >= 0`` and ``0 <= min_lr <= lr``.

    Raises:
        ConfigError: naming the key and the allowed range.
    """
    if patience < 0:
        raise ConfigError(f"config.patience: {patience!r} must be >= 0 (reports without improvement; 0: never stop early)")
    if not 0.0 <= min_lr <= lr:
        raise ConfigError(f"config.min_lr: {min_lr!r} must be in [0, lr={lr!r}]")
