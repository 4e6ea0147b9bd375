"""Output heads: (MLP output m, state y) -> dy/dt = [v, a], canonical units.

``m`` has ``HEAD_DIMS[name]`` entries; ``y (..., 6)``; the result is ``(..., 6)``. Except for
``mlp_simple`` the first three derivatives are the state's own velocity. In the 4D heads
``m0 = m[..., :1]`` is a magnitude (raw, |.|, softplus or log) and ``d = m[..., 1:4]`` a direction
(raw, normalised, or tanh-squashed then normalised). Normalisations divide by
sqrt(|d|^2 + EPS^2), so values and gradients are finite at d = 0.

``rtn``: m = (a_r, a_t, a_n) in the frame r_hat, t_hat = n_hat x r_hat, n_hat = (r x v)/|r x v|.

Equivariant heads (:data:`EQUIVARIANT_HEADS`) build the acceleration from the state's own
vectors only, so head(m, M y) = M head(m, y) for every orthogonal M (rotations and
reflections); with an invariant feature layer the whole field is equivariant:

- ``radial``: a = m0 r_hat (1 output, signed);
- ``radial_logmag``: a = -exp(m0) r_hat (1 output: always attractive, log-magnitude);
- ``rt``: a = m0 r_hat + m1 t_hat, t_hat = the unit component of v normal to r (2 outputs).
  (``rtn``'s normal term flips sign under a reflection, so ``rtn`` is not in the set.)
``planar_constraint`` (a flag, applied after any head) forces the z-acceleration to zero.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from trainables.common.nn import lookup

EPS = 1e-8


def _unit(d: torch.Tensor) -> torch.Tensor:
    return d / torch.sqrt(torch.sum(d * d, dim=-1, keepdim=True) + EPS**2)


def _with_velocity(acc: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([y[..., 3:], acc], dim=-1)


def _mag_dir(magnitude: Callable[[torch.Tensor], torch.Tensor],
             direction: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def head(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _with_velocity(magnitude(m[..., :1]) * direction(m[..., 1:4]), y)

    return head


def mlp_simple(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return m


def mlp_simple_hybrid(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _with_velocity(m, y)


def rtn(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pos, vel = y[..., :3], y[..., 3:]
    r_hat = _unit(pos)
    n_hat = _unit(torch.linalg.cross(pos, vel, dim=-1))
    t_hat = torch.linalg.cross(n_hat, r_hat, dim=-1)
    acc = m[..., 0:1] * r_hat + m[..., 1:2] * t_hat + m[..., 2:3] * n_hat
    return _with_velocity(acc, y)


def radial(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _with_velocity(m[..., :1] * _unit(y[..., :3]), y)


def radial_logmag(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _with_velocity(-torch.exp(m[..., :1]) * _unit(y[..., :3]), y)


def rt(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pos, vel = y[..., :3], y[..., 3:]
    r_hat = _unit(pos)
    t_hat = _unit(vel - torch.sum(vel * r_hat, dim=-1, keepdim=True) * r_hat)
    return _with_velocity(m[..., 0:1] * r_hat + m[..., 1:2] * t_hat, y)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _softplus_eps(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x) + EPS


def _tanh_unit(d: torch.Tensor) -> torch.Tensor:
    return _unit(torch.tanh(d))


HEADS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mlp_simple": mlp_simple,
    "mlp_simple_hybrid": mlp_simple_hybrid,
    "mlp_4D_signed": _mag_dir(_identity, _identity),
    "mlp_4D": _mag_dir(torch.abs, _identity),
    "mlp_4D_accsoftplus": _mag_dir(F.softplus, _identity),
    "mlp_4D_unit": _mag_dir(torch.abs, _unit),
    "mlp_4D_unit_softplus": _mag_dir(F.softplus, _unit),
    "mlp_4D_logmag_exp": _mag_dir(torch.exp, _identity),
    "mlp_4D_logmag_unit_exp": _mag_dir(torch.exp, _unit),
    "mlp_4D_logmag_unit_tanh_exp": _mag_dir(torch.exp, _tanh_unit),
    "mlp_4D_logmag_unit_tanh_softplus": _mag_dir(_softplus_eps, _tanh_unit),
    "rtn": rtn,
    "radial": radial,
    "radial_logmag": radial_logmag,
    "rt": rt,
}
"""Output heads by name (``mlp_4D_softplus`` is an alias of ``mlp_4D_accsoftplus``)."""
HEADS["mlp_4D_softplus"] = HEADS["mlp_4D_accsoftplus"]

HEAD_DIMS: dict[str, int] = {name: 4 for name in HEADS} | {"mlp_simple": 6, "mlp_simple_hybrid": 3, "rtn": 3,
                                                          "radial": 1, "radial_logmag": 1, "rt": 2}
"""Number of MLP outputs each head consumes."""

EQUIVARIANT_HEADS = frozenset({"radial", "radial_logmag", "rt"})
"""Heads that turn with the state (see the module docstring)."""


def get_head(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lookup(HEADS, name, "head")  # type: ignore[return-value]


def planar(dydt: torch.Tensor) -> torch.Tensor:
    """Zero the z-acceleration (the last component) of ``dydt (..., 6)``."""
    return torch.cat([dydt[..., :5], torch.zeros_like(dydt[..., 5:])], dim=-1)
