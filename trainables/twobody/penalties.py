"""Physics penalty terms of the two-body loss, each weighted by a config key and reported alone.

All in canonical units (mu = 1). ``field`` is the learned :class:`~.model.VectorField`; ``true``
and ``pred`` are the batch's true and predicted segments ``(B, L, 6)``.

=====================  =========================================================================
term (config weight)   value
=====================  =========================================================================
``attraction``         percent of the learned acceleration that points outward, at the true
(``w_attraction``)     states: 100 mean(relu(a . r_hat) / |a|); 0 for attractive gravity
``sign_flip``          direction reversals of the learned acceleration between consecutive
(``w_sign_flip``)      samples of a segment: 100 mean(relu(-cos(a_k, a_k+1))); 0 for a smooth field
``l1``, ``l2``         mean |theta| and mean theta^2 over the model's parameters
(``w_l1``, ``w_l2``)
``energy``             drift of the specific energy E = |v|^2 / 2 - 1/r along the predicted
(``w_energy``)         segments: 100 mean(|E_k - E_0| / |E_0|); 0 for a conservative prediction
=====================  =========================================================================

The loss ``percent_error_with_attraction`` of the reference runs is ``percent_error`` plus the
attraction term with weight 1 (:data:`LOSS_TERMS`); ``w_attraction`` adds to that.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from trainables.common.penalties import weight_norms

EPS = 1e-12
TERMS = ("attraction", "sign_flip", "l1", "l2", "energy")
"""Penalty terms in the order they are reported (``loss_<term>``)."""
LOSS_TERMS = {"percent_error_with_attraction": {"attraction": 1.0}}
"""Losses that are a base loss plus fixed penalty weights."""


def attraction(field: Any, true: torch.Tensor) -> torch.Tensor:
    a = field.acceleration(true.reshape(-1, 6))
    r_hat = true.reshape(-1, 6)[:, :3] / torch.linalg.vector_norm(true.reshape(-1, 6)[:, :3], dim=-1, keepdim=True)
    outward = torch.relu(torch.sum(a * r_hat, dim=-1))
    return 100.0 * torch.mean(outward / (torch.linalg.vector_norm(a, dim=-1) + EPS))


def sign_flip(field: Any, true: torch.Tensor) -> torch.Tensor:
    a = field.acceleration(true)                                            # (B, L, 3)
    cos = torch.sum(a[:, 1:] * a[:, :-1], dim=-1) / (
        torch.linalg.vector_norm(a[:, 1:], dim=-1) * torch.linalg.vector_norm(a[:, :-1], dim=-1) + EPS)
    return 100.0 * torch.mean(torch.relu(-cos))


def energy(pred: torch.Tensor) -> torch.Tensor:
    e = 0.5 * torch.sum(pred[..., 3:] ** 2, dim=-1) - 1.0 / torch.linalg.vector_norm(pred[..., :3], dim=-1)
    return 100.0 * torch.mean(torch.abs(e[:, 1:] - e[:, :1]) / (torch.abs(e[:, :1]) + EPS))


def penalty_weights(cfg: Any) -> dict[str, float]:
    """The non-zero weights of ``cfg`` (its ``w_<term>`` plus those its loss carries)."""
    weights = {t: float(getattr(cfg, f"w_{t}")) for t in TERMS}
    for term, w in LOSS_TERMS.get(cfg.loss, {}).items():
        weights[term] += w
    return {t: w for t, w in weights.items() if w > 0}


def penalties(field: Any, pred: torch.Tensor, true: torch.Tensor, weights: dict[str, float]
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """``(sum of weight x term, {loss_<term>: value})`` for the terms with a weight."""
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "attraction": lambda: attraction(field, true), "sign_flip": lambda: sign_flip(field, true),
        "l1": lambda: weight_norms(field.parameters())[0], "l2": lambda: weight_norms(field.parameters())[1],
        "energy": lambda: energy(pred)}
    total = torch.zeros((), dtype=pred.dtype, device=pred.device)
    values: dict[str, float] = {}
    for term, w in weights.items():
        value = fns[term]()
        total = total + w * value
        values[f"loss_{term}"] = float(value.detach())
    return total, values
