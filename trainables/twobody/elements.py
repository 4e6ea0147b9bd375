"""Random orbital elements for the dataset kinds.

Kinds (all elliptic, all with perigee a(1-e) >= R_E + 200 km):

- ``complex``: a ~ U[R_E + 200 km, 42164 km]; e | a ~ U[0, e_max(a)] with
  e_max(a) = min(0.99, 1 - (R_E + 200 km)/a) (about 0.84 at GEO, 0 at the lowest orbit).
  Drawing e given a, never uniformly on [0, 0.99], keeps every perigee above the atmosphere.
- ``simple``: a narrow near-circular LEO band: a ~ U[R_E + 400 km, R_E + 1200 km],
  e | a ~ U[0, min(0.02, e_max(a))].
- ``circular``: a as in ``complex``, e = 0.

Planar orbits have i = raan = argp = 0 (perigee on +x, counter-clockwise motion) unless an
orientation says otherwise (:func:`orient`); 3D orbits draw i with cos(i) ~ U[-1, 1] (isotropic
orbit normals, both senses of motion) and raan, argp ~ U[0, 2 pi). nu0 ~ U[0, 2 pi), or 0 with
``fixed_nu0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.common.errors import ConfigError

from .constants import A_GEO, E_CAP, MIN_ALTITUDE, R_EARTH

KINDS: dict[str, dict[str, float]] = {
    "complex": {"a_min": R_EARTH + MIN_ALTITUDE, "a_max": A_GEO, "e_cap": E_CAP},
    "simple": {"a_min": R_EARTH + 400.0, "a_max": R_EARTH + 1200.0, "e_cap": 0.02},
    "circular": {"a_min": R_EARTH + MIN_ALTITUDE, "a_max": A_GEO, "e_cap": 0.0},
}
"""Ranges of each dataset kind: semi-major axis bounds (km) and the eccentricity cap."""


@dataclass(frozen=True)
class Elements:
    """Classical elements of ``n`` orbits; each field has shape ``(n,)``.

    a: km; e: -; i, raan, argp, nu0: rad.
    """

    a: np.ndarray
    e: np.ndarray
    i: np.ndarray
    raan: np.ndarray
    argp: np.ndarray
    nu0: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"a": self.a, "e": self.e, "i": self.i, "raan": self.raan, "argp": self.argp,
                "nu0": self.nu0}


def draw_elements(kind: str, n: int, rng: np.random.Generator, planar: bool = True,
                  fixed_nu0: bool = False) -> Elements:
    """Draw the elements of ``n`` orbits of dataset ``kind`` (see the module docstring)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown orbit kind {kind!r}; known kinds: {', '.join(KINDS)}")
    if n < 1:
        raise ConfigError(f"number of orbits must be >= 1, got {n}")
    k = KINDS[kind]
    a = rng.uniform(k["a_min"], k["a_max"], n)
    e_hi = np.minimum(k["e_cap"], np.maximum(0.0, 1.0 - (R_EARTH + MIN_ALTITUDE) / a))
    e = rng.uniform(0.0, 1.0, n) * e_hi
    nu0 = np.zeros(n) if fixed_nu0 else rng.uniform(0.0, 2.0 * np.pi, n)
    if planar:
        i = raan = argp = np.zeros(n)
    else:
        i = np.arccos(rng.uniform(-1.0, 1.0, n))
        raan = rng.uniform(0.0, 2.0 * np.pi, n)
        argp = rng.uniform(0.0, 2.0 * np.pi, n)
    return Elements(a=a, e=e, i=i, raan=raan, argp=argp, nu0=nu0)


ORIENTATIONS: dict[str, str] = {
    "fixed": "perigee on +x, counter-clockwise (i = argp = 0)",
    "rotated": "argument of perigee ~ U[0, 2 pi), counter-clockwise",
    "mirrored": "the fixed orbits mirrored in the x axis: clockwise (i = pi), perigee on +x",
    "any": "argument of perigee ~ U[0, 2 pi), each sense of motion with probability 1/2",
}
"""Orientations of planar orbits (3-D orbits are always drawn isotropic)."""


def orient(el: Elements, orientation: str, seed: int) -> Elements:
    """``el`` (planar) turned to ``orientation``; ``a``, ``e`` and ``nu0`` are unchanged, so a
    rotated or mirrored set holds the same orbits as the fixed set drawn from the same seed.

    The angles come from their own generator (``seed`` and a fixed stream id), not from the
    one that drew the shapes. A clockwise orbit is the counter-clockwise one with i = pi: its
    positions are (x, -y) of the counter-clockwise orbit when argp = 0.
    """
    if orientation not in ORIENTATIONS:
        raise ConfigError(f"orientation {orientation!r} is not allowed; allowed: {', '.join(ORIENTATIONS)}")
    n = el.a.shape[0]
    rng = np.random.default_rng([seed, 0x0E1E])
    argp = rng.uniform(0.0, 2.0 * np.pi, n) if orientation in ("rotated", "any") else el.argp
    if orientation == "mirrored":
        i = np.full(n, np.pi)
    elif orientation == "any":
        i = np.where(rng.uniform(0.0, 1.0, n) < 0.5, np.pi, 0.0)
    else:
        i = el.i
    return Elements(a=el.a, e=el.e, i=i, raan=el.raan, argp=argp, nu0=el.nu0)
