"""Data augmentation by the symmetries of gravity: each training segment turned at random.

Newtonian two-body motion is invariant under rotations and reflections: if y(t) = [r, v] is an
orbit, so is [M r, M v] for any orthogonal M, with acceleration M a. A model that is not
invariant by construction (:data:`.features.INVARIANT_FEATURES` with an equivariant head) can
learn the symmetry from turned copies of its training segments instead:

- ``none``: segments as stored;
- ``rotate``: each segment rotated about z by an angle ~ U[0, 2 pi);
- ``rotate_mirror``: rotated, then mirrored in the xz-plane (y -> -y, so clockwise becomes
  counter-clockwise) with probability 1/2.

Rotations about z and that mirror keep planar data planar. The draws come from the trainer's
batch generator, so a checkpointed run resumes bit for bit.
"""

from __future__ import annotations

import math

import torch

AUGMENTS = ("none", "rotate", "rotate_mirror")


def turn_matrices(n: int, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``n`` random orthogonal matrices ``(n, 3, 3)`` (float64) for augmentation ``kind``."""
    theta = torch.rand(n, generator=generator, dtype=torch.float64) * (2.0 * math.pi)
    c, s = torch.cos(theta), torch.sin(theta)
    m = torch.zeros(n, 3, 3, dtype=torch.float64)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1.0
    if kind == "rotate_mirror":
        flip = torch.where(torch.rand(n, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0)
        m[:, :, 1] *= flip[:, None]           # M = R diag(1, flip, 1): mirror y, then rotate
    return m


def augment(states: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``states (B, L, 6)`` with each segment turned by its own random matrix (unchanged for
    ``none``): positions and velocities alike, so the segment stays an exact orbit."""
    if kind == "none":
        return states
    m = turn_matrices(states.shape[0], kind, generator).to(dtype=states.dtype, device=states.device)
    pos = torch.einsum("bij,blj->bli", m, states[..., :3])
    vel = torch.einsum("bij,blj->bli", m, states[..., 3:])
    return torch.cat([pos, vel], dim=-1)
