"""Robust losses rho(r) of a residual r = y_pred - y_true (normalised output units) with scale c,
and the full training objective.

=================  ==========================================================  ==============
name               rho(r)                                                       large |r|
=================  ==========================================================  ==============
``mse``            r^2                                                          grows as r^2
``huber``          r^2 / 2 if |r| <= c, else c (|r| - c / 2)                    linear
``cauchy``         c^2 / 2 * log(1 + (r / c)^2)                                 logarithmic
``welsch``         c^2 / 2 * (1 - exp(-(r / c)^2))                              -> c^2 / 2
``geman_mcclure``  r^2 / 2 / (1 + (r / c)^2)                                    -> c^2 / 2
``tukey``          c^2 / 6 * (1 - (1 - (r / c)^2)^3) if |r| <= c, else c^2 / 6  = c^2 / 6
=================  ==========================================================  ==============

Near r = 0 every robust one behaves like r^2 / 2; Welsch, Geman-McClure and Tukey are
*redescending*: their influence d rho / d r goes back to zero for large residuals (Tukey's is
exactly zero beyond c), so gross outliers stop pulling the fit.

Objective: ``w_recon * mean(rho(r)) + w_l1 * mean|theta| + w_l2 * mean(theta^2) + w_grad *
mean_batch ||d y / d x||^2``, theta every trainable parameter, the Jacobian taken in normalised
units (:func:`objective`).
"""

from __future__ import annotations

from typing import Callable

import torch

from trainables.common.penalties import weight_norms

Rho = Callable[[torch.Tensor, float], torch.Tensor]


def mse(r: torch.Tensor, c: float) -> torch.Tensor:
    return r ** 2


def huber(r: torch.Tensor, c: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= c, 0.5 * r ** 2, c * (a - 0.5 * c))


def cauchy(r: torch.Tensor, c: float) -> torch.Tensor:
    return 0.5 * c ** 2 * torch.log1p((r / c) ** 2)


def welsch(r: torch.Tensor, c: float) -> torch.Tensor:
    return 0.5 * c ** 2 * (1 - torch.exp(-(r / c) ** 2))


def geman_mcclure(r: torch.Tensor, c: float) -> torch.Tensor:
    return 0.5 * r ** 2 / (1 + (r / c) ** 2)


def tukey(r: torch.Tensor, c: float) -> torch.Tensor:
    inside = 1 - (1 - (r / c) ** 2) ** 3
    return c ** 2 / 6 * torch.where(r.abs() <= c, inside, torch.ones_like(r))


LOSSES: dict[str, Rho] = {"mse": mse, "huber": huber, "cauchy": cauchy, "welsch": welsch,
                          "geman_mcclure": geman_mcclure, "tukey": tukey}
"""Robust loss by name: ``rho(r, c)`` elementwise."""


def jacobian_penalty(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mean_batch ||d y / d x||_F^2`` for ``y`` ``(B, out)`` computed from ``x`` ``(B, in)`` (requires grad)."""
    total = torch.zeros((), dtype=y.dtype, device=y.device)
    for k in range(y.shape[1]):  # one backward pass per output (a few outputs)
        (g,) = torch.autograd.grad(y[:, k].sum(), x, create_graph=True)
        total = total + (g ** 2).sum(1).mean()
    return total


def objective(rho: Rho, scale: float, y_pred: torch.Tensor, y_true: torch.Tensor, x: torch.Tensor,
              params: list[torch.Tensor], w_recon: float, w_l1: float, w_l2: float, w_grad: float
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss and its terms (floats, for reporting). ``x`` must require grad if ``w_grad``."""
    recon = rho(y_pred - y_true, scale).mean()
    l1, l2 = weight_norms(params)
    grad = jacobian_penalty(y_pred, x) if w_grad else torch.zeros((), device=y_pred.device)
    loss = w_recon * recon + w_l1 * l1 + w_l2 * l2 + w_grad * grad
    terms = {"recon": recon, "l1": l1, "l2": l2, "grad_penalty": grad}
    return loss, {k: float(v.detach()) for k, v in terms.items()}
