"""Cutting orbits into training segments that never cross an orbit boundary.

An orbit of ``N`` samples keeps the samples ``[round(f0 N), round(f1 N))`` for the curriculum's
``orbit_fraction = (f0, f1)``; of those ``n`` usable samples it yields
``floor((n - L) / stride) + 1`` segments of ``L = segment_length`` samples when ``n >= L``
(stride ``L`` by default: disjoint segments, so 360 samples give 20 segments of 18), else 0.

Two ways to split into training and validation data:

- ``split_then_segment`` (default): whole orbits go to validation, then both sides are
  segmented: no validation segment shares an orbit with a training segment.
- ``segment_then_split``: all orbits are segmented, then segments are split at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.common.errors import ConfigError, SegmentationError

from .dataset import OrbitArrays

SPLIT_MODES = ("split_then_segment", "segment_then_split")


@dataclass(frozen=True)
class Segments:
    """``m`` segments of ``L`` samples each, physical units.

    t: (m, L) s; states: (m, L, 6) km, km/s; acc: (m, L, 3) km/s^2;
    orbit_id: (m,) the orbit each came from; start: (m,) index of its first sample in the orbit.
    """

    t: np.ndarray
    states: np.ndarray
    acc: np.ndarray
    orbit_id: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])


def usable_range(orbit_length: int, fraction: tuple[float, float] = (0.0, 1.0)) -> tuple[int, int]:
    """Sample indices ``[start, stop)`` of an orbit that ``fraction`` keeps."""
    f0, f1 = float(fraction[0]), float(fraction[1])
    if not (0.0 <= f0 < f1 <= 1.0):
        raise ConfigError(f"orbit_fraction=[{f0:g}, {f1:g}] must satisfy 0 <= start < end <= 1")
    return int(round(f0 * orbit_length)), int(round(f1 * orbit_length))


def count_segments(orbit_length: int, segment_length: int, fraction: tuple[float, float] = (0.0, 1.0),
                   stride: int | None = None) -> int:
    """Number of segments one orbit yields (see the module docstring for the formula)."""
    if segment_length < 2:
        raise ConfigError(f"segment_length={segment_length} must be >= 2 (a segment needs a start and a target)")
    stride = segment_length if stride is None else stride
    if stride < 1:
        raise ConfigError(f"stride={stride} must be >= 1")
    start, stop = usable_range(orbit_length, fraction)
    n = stop - start
    return 0 if n < segment_length else (n - segment_length) // stride + 1


def check_segments(orbit_length: int, segment_length: int, fraction: tuple[float, float] = (0.0, 1.0),
                   stride: int | None = None, where: str = "") -> int:
    """Like :func:`count_segments`, but zero segments raise :class:`SegmentationError`."""
    count = count_segments(orbit_length, segment_length, fraction, stride)
    if count == 0:
        start, stop = usable_range(orbit_length, fraction)
        raise SegmentationError(segment_length, orbit_length, (float(fraction[0]), float(fraction[1])),
                                stop - start, where)
    return count


def segment(orbits: OrbitArrays, segment_length: int, fraction: tuple[float, float] = (0.0, 1.0),
            stride: int | None = None) -> Segments:
    """All segments of all orbits, ordered by orbit then start; no Python loop over segments.

    Raises:
        SegmentationError: if the request yields zero segments.
    """
    k = orbits.samples_per_orbit
    per_orbit = check_segments(k, segment_length, fraction, stride)
    stride = segment_length if stride is None else stride
    first, _ = usable_range(k, fraction)
    starts = first + stride * np.arange(per_orbit)                     # (s,)
    idx = starts[:, None] + np.arange(segment_length)[None, :]         # (s, L)
    n = orbits.n_orbits
    return Segments(
        t=orbits.t[:, idx].reshape(n * per_orbit, segment_length),
        states=orbits.states[:, idx].reshape(n * per_orbit, segment_length, 6),
        acc=orbits.acc[:, idx].reshape(n * per_orbit, segment_length, 3),
        orbit_id=np.repeat(orbits.orbit_id, per_orbit),
        start=np.tile(starts, n),
    )


def _take(seg: Segments, mask: np.ndarray) -> Segments:
    return Segments(t=seg.t[mask], states=seg.states[mask], acc=seg.acc[mask],
                    orbit_id=seg.orbit_id[mask], start=seg.start[mask])


def split_segments(orbits: OrbitArrays, segment_length: int, val_fraction: float = 0.2, seed: int = 0,
                   mode: str = "split_then_segment", fraction: tuple[float, float] = (0.0, 1.0),
                   stride: int | None = None) -> tuple[Segments, Segments]:
    """Training and validation segments, split by orbit (default) or by segment.

    With ``split_then_segment`` the number of validation orbits is
    ``floor(n_orbits * val_fraction)``; a single orbit therefore has no validation orbit (the
    validation set is empty rather than the training set).

    Raises:
        ConfigError: unknown ``mode`` or ``val_fraction`` outside [0, 1).
        SegmentationError: zero segments (before any split).
    """
    if mode not in SPLIT_MODES:
        raise ConfigError(f"split mode {mode!r} is not allowed; allowed: {', '.join(SPLIT_MODES)}")
    if not (0.0 <= val_fraction < 1.0):
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
    segs = segment(orbits, segment_length, fraction, stride)
    rng = np.random.default_rng(seed)
    if mode == "split_then_segment":
        n_val = int(np.floor(orbits.n_orbits * val_fraction))
        val_ids = rng.choice(orbits.orbit_id, size=n_val, replace=False) if n_val else np.empty(0, int)
        is_val = np.isin(segs.orbit_id, val_ids)
    else:
        n_val = int(np.floor(len(segs) * val_fraction))
        is_val = np.zeros(len(segs), dtype=bool)
        is_val[rng.choice(len(segs), size=n_val, replace=False)] = True
    return _take(segs, ~is_val), _take(segs, is_val)
