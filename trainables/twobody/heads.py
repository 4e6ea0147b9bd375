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
More 4D heads (magnitude m0, direction d):

- ``mlp_4D_logmag_unit_softplus``: a = (softplus(m0) + eps) d/|d|;
- ``mlp_4D_signed_unit``: a = m0 d/|d| (signed magnitude, unit direction);
- ``mlp_4D_unit_scaled``: a = |m0| d/|d| / r^2 (the MLP learns the magnitude relative to the
  inverse-square law; m0 = mu = 1 is exact gravity);
- ``mlp_4D_activation``: a = act(m0) d/|d|, act the config's hidden activation.

Options of every head (:class:`HeadModule`): ``magnitude_bound`` (a sigmoid-bounded magnitude
for the 4D heads) and ``magnitude_rescale: scalar`` (one learned scale of the acceleration).
``planar_constraint`` (a flag, applied after any head) forces the z-acceleration to zero.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from torch import nn

from trainables.common.nn import ACTIVATIONS, lookup

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


def mlp_4d_unit_scaled(m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r2 = torch.sum(y[..., :3] * y[..., :3], dim=-1, keepdim=True)
    return _with_velocity(torch.abs(m[..., :1]) * _unit(m[..., 1:4]) / (r2 + EPS**2), y)


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
    "mlp_4D_logmag_unit_softplus": _mag_dir(_softplus_eps, _unit),
    "mlp_4D_signed_unit": _mag_dir(_identity, _unit),
    "mlp_4D_unit_scaled": mlp_4d_unit_scaled,
    "mlp_4D_activation": _mag_dir(_identity, _unit),  # the magnitude goes through the activation first (HeadModule)
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


MAGNITUDE_DIRECTION_HEADS = frozenset(n for n in HEADS if n.startswith("mlp_4D"))
"""Heads whose first output is a magnitude and the next three a direction (``magnitude_bound`` applies)."""


def get_head(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lookup(HEADS, name, "head")  # type: ignore[return-value]


class HeadModule(nn.Module):
    """A head with its options, ``(m (..., HEAD_DIMS[name]), y (..., 6)) -> dy/dt (..., 6)``.

    - ``mlp_4D_activation``: m0 goes through the hidden ``activation`` (a module: PReLU learns).
    - ``magnitude_bound = B`` (4D heads): the magnitude is B * sigmoid(m0) in place of the head's own
      link, and the direction a unit vector (the head's tanh squashing kept), so |a| lies in (0, B)
      (canonical units; gravity at the Earth's surface is 1); for ``mlp_4D_unit_scaled`` the bounded
      magnitude is still divided by r^2.
    - ``magnitude_rescale = "scalar"``: the acceleration is multiplied by exp(s), one learned scalar
      s (0 at the start): the MLP learns a shape, s its scale.
    """

    def __init__(self, name: str, activation: str, magnitude_bound: float | None, magnitude_rescale: str) -> None:
        super().__init__()
        self.name = name
        self.fn = get_head(name)
        self.bound = magnitude_bound
        self.magnitude_act = lookup(ACTIVATIONS, activation, "activation")() if name == "mlp_4D_activation" else None
        self.log_scale = nn.Parameter(torch.zeros(())) if magnitude_rescale == "scalar" else None

    def forward(self, m: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.magnitude_act is not None:
            m = torch.cat([self.magnitude_act(m[..., :1]), m[..., 1:]], dim=-1)
        if self.bound is not None and self.name == "mlp_4D_unit_scaled":
            out = self.fn(torch.cat([self.bound * torch.sigmoid(m[..., :1]), m[..., 1:]], dim=-1), y)
        elif self.bound is not None and self.name in MAGNITUDE_DIRECTION_HEADS:
            mag = self.bound * torch.sigmoid(m[..., :1])
            direction = _tanh_unit if "tanh" in self.name else _unit
            out = _with_velocity(mag * direction(m[..., 1:4]), y)
        else:
            out = self.fn(m, y)
        if self.log_scale is not None:
            out = torch.cat([out[..., :3], out[..., 3:] * torch.exp(self.log_scale)], dim=-1)
        return out


def planar(dydt: torch.Tensor) -> torch.Tensor:
    """Zero the z-acceleration (the last component) of ``dydt (..., 6)``."""
    return torch.cat([dydt[..., :5], torch.zeros_like(dydt[..., 5:])], dim=-1)
