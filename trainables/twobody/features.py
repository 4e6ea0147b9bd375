"""Feature layers: state y -> MLP input, in canonical units (mu = 1, DU = R_E).

Every function maps ``y (..., 6) = [x, y, z, vx, vy, vz]`` to ``(..., F)``. Norms carry a tiny
``EPS`` inside the square root so that values and gradients stay finite at r = 0, v = 0 or
h = 0 (a guard, not a model change: EPS^2 = 1e-24 is far below any real state).

- ``cart``: y unchanged (F = 6).
- ``sph_4D_rinv_vel``: [1/r, x/r, y/r, z/r, vx, vy, vz] (F = 7).
- ``sph_4D_rinv_vinv``: [1/r, x/r, y/r, z/r, v/|v|^2] (F = 7): the velocity replaced by its
  inverse (the vector v/|v|^2, large where the orbit is slow).
- ``sph_4D_rinv_vel_harmonics``: ``sph_4D_rinv_vel`` plus cos(k phi), sin(k phi) for
  k = 1..``harmonic_order`` of the in-plane angle phi = atan2(y, x) (F = 7 + 2K).
- ``sph_4D_rinv_vel_vrvt``: ``sph_4D_rinv_vel`` plus radial speed v_r = r_hat . v,
  transverse speed v_t = |r x v| / r and |h| = |r x v| (F = 10).

Invariant layers (:data:`INVARIANT_FEATURES`): the same value for a state and for any rotation
or reflection of it (y -> [M r, M v], M orthogonal), so that with an equivariant head
(:data:`.heads.EQUIVARIANT_HEADS`) the whole field is rotation and reflection equivariant by
construction:

- ``inv_rinv_vrvt``: [1/r, v_r, v_t, |v|] (F = 4), v_t = |v - v_r r_hat| >= 0.
- ``inv_logr_rinv_vrvt``: [log r, 1/r, v_r, v_t, |v|] (F = 5): with log r a power law in r
  (gravity's |a| = r^-2) is linear in the input.
- ``inv_rinv_vrvt_fourier``: ``inv_rinv_vrvt`` plus sin(k pi / r), cos(k pi / r) for
  k = 1..``harmonic_order`` (F = 4 + 2K): a higher-frequency mapping of the radius.
"""

from __future__ import annotations

from typing import Callable

import torch

from trainables.common.nn import lookup

EPS = 1e-12


def _norm(v: torch.Tensor) -> torch.Tensor:
    """Guarded Euclidean norm over the last axis, keepdim: (..., 3) -> (..., 1)."""
    return torch.sqrt(torch.sum(v * v, dim=-1, keepdim=True) + EPS**2)


def cart(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    return y


def sph_4D_rinv_vel(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    pos = y[..., :3]
    inv_r = torch.rsqrt(torch.sum(pos * pos, dim=-1, keepdim=True) + EPS**2)  # fewer ops than 1 / norm
    return torch.cat([inv_r, pos * inv_r, y[..., 3:]], dim=-1)


def sph_4D_rinv_vinv(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    r = _norm(y[..., :3])
    v = _norm(y[..., 3:])
    return torch.cat([1.0 / r, y[..., :3] / r, y[..., 3:] / v**2], dim=-1)


def sph_4D_rinv_vel_harmonics(y: torch.Tensor, harmonic_order: int = 4) -> torch.Tensor:
    phi = torch.atan2(y[..., 1:2], y[..., 0:1] + EPS)
    k = torch.arange(1, harmonic_order + 1, dtype=y.dtype, device=y.device)
    return torch.cat([sph_4D_rinv_vel(y), torch.cos(k * phi), torch.sin(k * phi)], dim=-1)


def sph_4D_rinv_vel_vrvt(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    pos, vel = y[..., :3], y[..., 3:]
    r = _norm(pos)
    h = _norm(torch.linalg.cross(pos, vel, dim=-1))
    v_r = torch.sum(pos * vel, dim=-1, keepdim=True) / r
    return torch.cat([sph_4D_rinv_vel(y), v_r, h / r, h], dim=-1)


def inv_rinv_vrvt(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    pos, vel = y[..., :3], y[..., 3:]
    r = _norm(pos)
    v_r = torch.sum(pos * vel, dim=-1, keepdim=True) / r
    v_t = _norm(vel - v_r * pos / r)
    return torch.cat([1.0 / r, v_r, v_t, _norm(vel)], dim=-1)


def inv_logr_rinv_vrvt(y: torch.Tensor, harmonic_order: int = 0) -> torch.Tensor:
    base = inv_rinv_vrvt(y)
    return torch.cat([-torch.log(base[..., :1]), base], dim=-1)


def inv_rinv_vrvt_fourier(y: torch.Tensor, harmonic_order: int = 4) -> torch.Tensor:
    base = inv_rinv_vrvt(y)
    k = torch.arange(1, harmonic_order + 1, dtype=y.dtype, device=y.device)
    angle = torch.pi * k * base[..., :1]
    return torch.cat([base, torch.sin(angle), torch.cos(angle)], dim=-1)


FEATURES: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "cart": cart,
    "sph_4D_rinv_vel": sph_4D_rinv_vel,
    "sph_4D_rinv_vinv": sph_4D_rinv_vinv,
    "sph_4D_rinv_vel_harmonics": sph_4D_rinv_vel_harmonics,
    "sph_4D_rinv_vel_vrvt": sph_4D_rinv_vel_vrvt,
    "inv_rinv_vrvt": inv_rinv_vrvt,
    "inv_logr_rinv_vrvt": inv_logr_rinv_vrvt,
    "inv_rinv_vrvt_fourier": inv_rinv_vrvt_fourier,
}
"""Feature layers by name."""

INVARIANT_FEATURES = frozenset({"inv_rinv_vrvt", "inv_logr_rinv_vrvt", "inv_rinv_vrvt_fourier"})
"""Layers whose output is unchanged when the state is rotated or reflected."""


def feature_dim(name: str, harmonic_order: int = 4) -> int:
    """Number of features F that layer ``name`` produces."""
    fn = lookup(FEATURES, name, "feature layer")
    return int(fn(torch.ones(1, 6), harmonic_order).shape[-1])  # type: ignore[operator]
