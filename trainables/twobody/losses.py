"""Losses over a batch of predicted segments.

``pred`` and ``true`` are ``(batch, L, 6)`` canonical states; the first point of each segment
is the initial condition and is excluded. A "point" is one state 6-vector.

- ``mean_squared_error``: mean of the squared components.
- ``percent_error``: mean over points of |y_true - y_pred| / max(|y_true|, 1e-8) * 100.
- ``percent_error_plus_nmse``: percent_error + w * 100 * sqrt(MSE / mean(y_true^2) + 1e-12),
  w = ``mse_weight``.
- ``percent_error_with_attraction``: percent_error + the attraction penalty (:mod:`.penalties`).

Physics penalty terms (attraction, sign flips, L1/L2 weights, energy drift) add to any loss with
their ``w_<term>`` weights (:mod:`.penalties`).
"""

from __future__ import annotations

from typing import Callable

import torch

from trainables.common.nn import lookup


def mean_squared_error(pred: torch.Tensor, true: torch.Tensor, mse_weight: float = 1.0) -> torch.Tensor:
    return torch.mean((pred[:, 1:] - true[:, 1:]) ** 2)


def percent_error(pred: torch.Tensor, true: torch.Tensor, mse_weight: float = 1.0) -> torch.Tensor:
    p, t = pred[:, 1:], true[:, 1:]
    return torch.mean(torch.linalg.vector_norm(t - p, dim=-1)
                      / torch.clamp(torch.linalg.vector_norm(t, dim=-1), min=1e-8)) * 100.0


def percent_error_plus_nmse(pred: torch.Tensor, true: torch.Tensor, mse_weight: float = 1.0) -> torch.Tensor:
    nmse = mean_squared_error(pred, true) / torch.mean(true[:, 1:] ** 2)
    return percent_error(pred, true) + mse_weight * 100.0 * torch.sqrt(nmse + 1e-12)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mean_squared_error": mean_squared_error,
    "percent_error": percent_error,
    "percent_error_plus_nmse": percent_error_plus_nmse,
    "percent_error_with_attraction": percent_error,  # + the attraction term, weight 1 (.penalties.LOSS_TERMS)
}


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    return lookup(LOSSES, name, "loss")  # type: ignore[return-value]
