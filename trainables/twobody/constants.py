"""Physical constants and the canonical (non-dimensional) units of the two-body data.

Canonical units: DU = R_E, TU = sqrt(DU^3 / mu), so that mu = 1 in canonical units.
Datasets are stored in physical units (km, s, km/s, km/s^2); the canonical scales are
stored beside them and a model trains on ``physical / scale``.
"""

from __future__ import annotations

import math

MU_EARTH: float = 398600.4418
"""Earth's gravitational parameter, km^3 / s^2."""
R_EARTH: float = 6378.137
"""Earth's equatorial radius, km."""
MIN_ALTITUDE: float = 200.0
"""Lowest allowed perigee altitude, km (perigee radius >= R_E + 200 km)."""
A_GEO: float = 42164.0
"""Geostationary semi-major axis, km (largest semi-major axis drawn)."""
E_CAP: float = 0.99
"""Largest eccentricity ever drawn."""
SAMPLES_PER_ORBIT: int = 360
"""Samples per orbit: one per degree of mean anomaly."""

DU: float = R_EARTH
"""Canonical distance unit, km."""
TU: float = math.sqrt(DU**3 / MU_EARTH)
"""Canonical time unit, s (806.811 s)."""
VU: float = DU / TU
"""Canonical velocity unit, km/s (7.905366 km/s)."""
AU: float = DU / TU**2
"""Canonical acceleration unit, km/s^2."""


def e_max(a_km: float) -> float:
    """Largest eccentricity whose perigee a(1-e) stays at or above R_E + 200 km (capped at 0.99)."""
    return min(E_CAP, 1.0 - (R_EARTH + MIN_ALTITUDE) / a_km)


def canonical_units() -> dict[str, float]:
    """The scales that turn physical values into canonical ones (divide by them)."""
    return {"mu_km3_s2": MU_EARTH, "DU_km": DU, "TU_s": TU, "VU_km_s": VU, "AU_km_s2": AU}
