"""The visual family's training losses (ELBO with MSE reconstruction; pixel values in [0, 1]).

A training window holds ``K + H`` frames ``(B, K + H, C, S, S)`` and the ``H`` actions applied
after the context ``(B, H)``: frame ``K - 1`` (the last context frame) is the rollout's start,
frames ``K .. K + H - 1`` its ``H`` predictions.

- ``hgn``: encode the context once, sample ``z``, roll the state out ``H`` steps, decode every
  state: ``loss = mse(frame K-1) + predictor_weight * mean_h mse(frame K-1+h) + beta * KL``;
- ``detached``: encode every frame from the ``K`` frames ending at it (per-frame VAE:
  ``mse + beta * KL`` over the ``H + 1`` frames), and train the predictor on the detached
  latent states (means): ``predictor_weight * mse(rollout, encoded states)``.

Reported parts: ``recon_loss`` (the reconstruction: of frame ``K - 1`` in ``hgn``, of every frame
in ``detached``), ``pred_loss`` (the predicted frames' pixel MSE in ``hgn``, the latent MSE in
``detached``) and ``kl``. The KL is per latent element, averaged over the batch, floored at ``free_bits`` (nats), then
averaged over the elements.
"""

from __future__ import annotations

import torch

from .model import VisualWorldModel


def kl_term(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """Mean over latent elements of ``max(KL(q(z) || N(0, 1)) averaged over the batch, free_bits)``;
    ``mu``, ``logvar`` ``(B, ...)``."""
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)
    return kl.mean(0).clamp(min=free_bits).mean()


def sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A reparameterised sample of ``N(mu, exp(logvar))`` (torch's global generator)."""
    return mu + torch.randn_like(mu) * (0.5 * logvar).exp()


def per_frame_mse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error per frame index: ``(B, T, C, S, S)`` x2 -> ``(T,)``."""
    return ((pred - true) ** 2).mean((0, 2, 3, 4))


def hgn_loss(model: VisualWorldModel, frames: torch.Tensor, actions: torch.Tensor, dt: float, beta: float,
             free_bits: float, predictor_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The ``hgn`` loss of one window (see the module docstring) and its parts for the report."""
    k = model.context
    mu, logvar = model.encode(frames[:, :k])
    s0 = model.state(sample(mu, logvar))
    states = torch.cat([s0[:, None], model.rollout(s0, actions, dt)], 1)
    err = per_frame_mse(model.decode(states), frames[:, k - 1:])
    kl = kl_term(mu, logvar, free_bits)
    predicted = err[1:].mean()
    return err[0] + predictor_weight * predicted + beta * kl, {"recon_loss": err[0].item(), "pred_loss": predicted.item(),
                                                                 "kl": kl.item()}


def context_windows(frames: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` frames ending at each frame ``k - 1 ..``: ``(B, T, C, S, S)`` -> ``(B, T - k + 1, k, C, S, S)``."""
    return torch.stack([frames[:, t - k + 1:t + 1] for t in range(k - 1, frames.shape[1])], 1)


def detached_loss(model: VisualWorldModel, frames: torch.Tensor, actions: torch.Tensor, dt: float, beta: float,
                  free_bits: float, predictor_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The ``detached`` losses of one window, summed (their parameters are disjoint, so one backward
    pass feeds both optimisers), and their parts for the report."""
    k = model.context
    windows = context_windows(frames, k)                   # (B, H + 1, K, C, S, S)
    b, n = windows.shape[:2]
    mu, logvar = model.encode(windows.flatten(0, 1))
    recon = per_frame_mse(model.decode(model.state(sample(mu, logvar)))[:, None], frames[:, k - 1:].flatten(0, 1)
                          [:, None]).mean()
    kl = kl_term(mu, logvar, free_bits)
    targets = model.state(mu).detach().unflatten(0, (b, n))
    predicted = model.rollout(targets[:, 0], actions, dt)
    latent = ((predicted - targets[:, 1:]) ** 2).mean()
    return recon + beta * kl + predictor_weight * latent, {"recon_loss": recon.item(), "pred_loss": latent.item(),
                                                            "kl": kl.item()}


LOSSES = {"hgn": hgn_loss, "detached": detached_loss}
"""Training mode -> its loss."""
