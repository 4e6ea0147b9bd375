"""Weight penalties shared by the families: one definition of the L1 and L2 terms."""

from __future__ import annotations

from typing import Iterable

import torch


def weight_norms(params: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean |theta|, mean theta^2)`` over every entry of ``params`` (scalars, differentiable)."""
    flat = torch.cat([p.reshape(-1) for p in params])
    return flat.abs().mean(), (flat ** 2).mean()
