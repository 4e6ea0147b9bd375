"""Segmentation: counts follow the formula, no segment crosses an orbit, zero segments are refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainables.common.errors import ConfigError, SegmentationError
from trainables.twobody.dataset import OrbitArrays, TwoBodySpec, generate_arrays
from trainables.twobody.segments import check_segments, count_segments, segment, split_segments


@pytest.fixture(scope="module")
def orbits() -> OrbitArrays:
    return generate_arrays(TwoBodySpec(orbits=10, seed=0))[0]


@pytest.mark.parametrize("length,fraction,stride,expected", [
    (18, (0.0, 1.0), None, 20),   # the users' 5 % segments: 200 segments from 10 orbits
    (4, (0.0, 1.0), None, 90),
    (10, (0.0, 1.0), None, 36),
    (18, (0.0, 0.1), None, 2),    # first 10 % of each orbit = 36 samples
    (18, (0.0, 1.0), 9, 39),      # overlapping: (360 - 18) // 9 + 1
    (361, (0.0, 1.0), None, 0),
    (18, (0.0, 0.04), None, 0),   # 14 samples only
])
def test_counts_match_formula(length: int, fraction: tuple[float, float], stride: int | None, expected: int) -> None:
    assert count_segments(360, length, fraction, stride) == expected


@settings(max_examples=80, deadline=None)
@given(length=st.integers(2, 60), f0=st.floats(0.0, 0.9), width=st.floats(0.05, 1.0),
       stride=st.one_of(st.none(), st.integers(1, 40)))
def test_segments_never_cross_orbits(orbits: OrbitArrays, length: int, f0: float, width: float,
                                     stride: int | None) -> None:
    fraction = (f0, min(1.0, f0 + width))
    start, stop = int(round(fraction[0] * 360)), int(round(fraction[1] * 360))
    n_usable = stop - start
    step = stride or length
    expected = 0 if n_usable < length else (n_usable - length) // step + 1
    assert count_segments(360, length, fraction, stride) == expected
    if expected == 0:
        with pytest.raises(SegmentationError):
            segment(orbits, length, fraction, stride)
        return
    segs = segment(orbits, length, fraction, stride)
    assert len(segs) == expected * orbits.n_orbits
    assert segs.states.shape == (len(segs), length, 6)
    # Every segment is a contiguous run of samples of one orbit, inside the kept fraction.
    for k in range(0, len(segs), max(1, len(segs) // 25)):
        o = int(np.flatnonzero(orbits.orbit_id == segs.orbit_id[k])[0])
        s = int(segs.start[k])
        assert start <= s and s + length <= stop
        assert np.array_equal(segs.states[k], orbits.states[o, s:s + length])
        assert np.array_equal(segs.t[k], orbits.t[o, s:s + length])
        assert np.array_equal(segs.acc[k], orbits.acc[o, s:s + length])


def test_zero_segments_raise_the_named_error(orbits: OrbitArrays) -> None:
    with pytest.raises(SegmentationError) as info:
        segment(orbits, 40, (0.0, 0.1))
    err = info.value
    assert (err.segment_length, err.orbit_length, err.fraction, err.usable) == (40, 360, (0.0, 0.1), 36)
    msg = str(err)
    assert "segment_length=40" in msg and "360 samples" in msg and "[0, 0.1]" in msg and "<= 36" in msg
    with pytest.raises(SegmentationError, match="phase 2"):
        check_segments(360, 400, where="phase 2")


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.6, 0.2), (-0.1, 0.5), (0.0, 1.5)])
def test_bad_fraction_is_a_config_error(bad: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="orbit_fraction"):
        count_segments(360, 18, bad)


def test_segment_length_below_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="segment_length=1"):
        count_segments(360, 1)


def test_split_then_segment_keeps_validation_orbits_apart(orbits: OrbitArrays) -> None:
    train, val = split_segments(orbits, 18, val_fraction=0.3, seed=1)
    assert len(train) == 7 * 20 and len(val) == 3 * 20
    assert not set(train.orbit_id) & set(val.orbit_id)
    again = split_segments(orbits, 18, val_fraction=0.3, seed=1)[1]
    assert np.array_equal(again.orbit_id, val.orbit_id)  # seeded


def test_segment_then_split_mixes_orbits(orbits: OrbitArrays) -> None:
    train, val = split_segments(orbits, 18, val_fraction=0.25, seed=2, mode="segment_then_split")
    assert len(train) + len(val) == 200 and len(val) == 50
    assert set(train.orbit_id) & set(val.orbit_id)  # the same orbit feeds both sides
    keys = set(zip(train.orbit_id.tolist(), train.start.tolist()))
    assert keys.isdisjoint(zip(val.orbit_id.tolist(), val.start.tolist()))


def test_single_orbit_keeps_it_for_training(orbits: OrbitArrays) -> None:
    one = OrbitArrays(orbits.orbit_id[:1], orbits.t[:1], orbits.states[:1], orbits.acc[:1])
    train, val = split_segments(one, 18, val_fraction=0.2)
    assert len(train) == 20 and len(val) == 0


def test_unknown_split_mode_lists_allowed(orbits: OrbitArrays) -> None:
    with pytest.raises(ConfigError, match="split_then_segment, segment_then_split"):
        split_segments(orbits, 18, mode="random")
