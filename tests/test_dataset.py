"""The Parquet orbit store: exact round trip, refusal to overwrite, corruption, hashes, lazy reads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainables.common.errors import ConfigError, DataError, DatasetExistsError
from trainables.common.parquet_store import BufferedParquetWriter, read_dynsweep_metadata
from trainables.twobody.constants import TU, VU
from trainables.twobody.dataset import (ORBITS_FILE, SAMPLES_FILE, STANDARD_SUITE, TwoBodySpec, ensure_dataset,
                                        generate_arrays, open_dataset, write_dataset)


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_round_trip_is_exact(tmp_path: Path) -> None:
    spec = TwoBodySpec(kind="complex", orbits=37, seed=4, planar=False)
    expected, elements = generate_arrays(spec)
    ds = open_dataset(write_dataset(spec, tmp_path, chunk_orbits=10))
    got = ds.arrays()
    for field in ("orbit_id", "t", "states", "acc"):
        assert np.array_equal(getattr(got, field), getattr(expected, field)), field
    orbits = ds.orbits()
    assert orbits.height == 37
    for key, values in elements.items():
        assert np.array_equal(orbits[key].to_numpy(), values), key
    assert ds.params == spec.params()


def test_metadata_carries_parameters_units_and_normalisation(tmp_path: Path) -> None:
    spec = TwoBodySpec(orbits=3, seed=9)
    ds = open_dataset(spec.name, root=write_dataset(spec, tmp_path).parent)
    assert ds.name == "complex_TBP_planar_3_train"
    assert ds.params["seed"] == 9 and ds.params["kind"] == "complex"
    assert ds.meta["units"]["x,y,z"] == "km"
    assert ds.normalisation["TU_s"] == pytest.approx(806.811, abs=1e-3) == TU
    assert ds.normalisation["VU_km_s"] == pytest.approx(7.905366, abs=1e-6) == VU
    assert len(ds.content_hash) == 64


def test_same_seed_same_hash_other_seed_other_hash(tmp_path: Path) -> None:
    spec = TwoBodySpec(orbits=40, seed=7)
    a = open_dataset(write_dataset(spec, tmp_path / "a", chunk_orbits=40))
    b = open_dataset(write_dataset(spec, tmp_path / "b", chunk_orbits=3))  # other chunking, same data
    c = open_dataset(write_dataset(TwoBodySpec(orbits=40, seed=8), tmp_path / "c"))
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash


def test_overwrite_is_refused_and_old_dataset_intact(tmp_path: Path) -> None:
    spec = TwoBodySpec(orbits=5, seed=1)
    folder = write_dataset(spec, tmp_path)
    before = _tree_bytes(folder)
    with pytest.raises(DatasetExistsError, match="refusing to overwrite"):
        write_dataset(spec, tmp_path)
    with pytest.raises(DatasetExistsError, match="other parameters"):
        ensure_dataset(TwoBodySpec(orbits=5, seed=2), tmp_path)  # same name, other seed
    assert _tree_bytes(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary leftovers
    # Explicit overwrite replaces it.
    write_dataset(TwoBodySpec(orbits=5, seed=2), tmp_path, overwrite=True)
    assert open_dataset(folder).params["seed"] == 2


def test_ensure_dataset_is_idempotent(tmp_path: Path) -> None:
    spec = TwoBodySpec(orbits=2, seed=3)
    path, created = ensure_dataset(spec, tmp_path)
    mtime = os.stat(path / SAMPLES_FILE).st_mtime_ns
    path2, created2 = ensure_dataset(spec, tmp_path)
    assert (created, created2) == (True, False) and path == path2
    assert os.stat(path / SAMPLES_FILE).st_mtime_ns == mtime


def test_writer_refuses_existing_file_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    schema = pa.schema([("v", pa.float64())])
    target = tmp_path / "f.parquet"
    with BufferedParquetWriter(target, schema, row_group_size=4, metadata={"k": 1}) as w:
        w.write({"v": np.arange(10.0)})
    original = target.read_bytes()
    assert pq.ParquetFile(target).metadata.num_row_groups == 3  # 4 + 4 + 2
    with pytest.raises(DatasetExistsError, match=str(target)):
        BufferedParquetWriter(target, schema)
    with pytest.raises(RuntimeError):
        with BufferedParquetWriter(tmp_path / "g.parquet", schema, row_group_size=4) as w:
            w.write({"v": np.arange(10.0)})
            raise RuntimeError("simulated crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet"]
    assert target.read_bytes() == original
    assert read_dynsweep_metadata(target)["k"] == 1


def test_truncated_or_corrupt_files_name_the_file(tmp_path: Path) -> None:
    folder = write_dataset(TwoBodySpec(orbits=20, seed=1), tmp_path)
    orbits_bytes = (folder / ORBITS_FILE).read_bytes()
    (folder / ORBITS_FILE).unlink()
    with pytest.raises(DataError, match=f"{folder / ORBITS_FILE}: no such file"):
        open_dataset(folder)
    (folder / ORBITS_FILE).write_bytes(orbits_bytes)
    samples = folder / SAMPLES_FILE
    data = samples.read_bytes()
    samples.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{samples}.*truncated or corrupt"):
        open_dataset(folder)
    samples.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=str(samples)):
        open_dataset(folder)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset("nope", root=tmp_path)


def test_samples_swapped_between_datasets_are_detected(tmp_path: Path) -> None:
    a = write_dataset(TwoBodySpec(orbits=3, seed=1), tmp_path / "a")
    b = write_dataset(TwoBodySpec(orbits=3, seed=2), tmp_path / "b")
    (a / SAMPLES_FILE).write_bytes((b / SAMPLES_FILE).read_bytes())
    with pytest.raises(DataError, match="content hash does not match"):
        open_dataset(a)


def test_lazy_reads_one_orbit_window_and_set(tmp_path: Path) -> None:
    spec = TwoBodySpec(orbits=50, seed=6)
    arr, _ = generate_arrays(spec)
    ds = open_dataset(write_dataset(spec, tmp_path))
    one = ds.orbit(17)
    assert one.height == 360 and set(one["orbit_id"].unique()) == {17}
    assert np.array_equal(one.select(["x", "y", "z", "vx", "vy", "vz"]).to_numpy(), arr.states[17])
    some = ds.arrays([3, 1, 44])
    assert some.orbit_id.tolist() == [1, 3, 44]
    assert np.array_equal(some.states, arr.states[[1, 3, 44]])
    win = ds.window(0.0, 600.0, orbit_ids=[0, 1])
    assert set(win["orbit_id"].unique()) <= {0, 1}
    assert win["t"].max() < 600.0 and win["t"].min() == 0.0
    expected = int(np.sum(arr.t[[0, 1]] < 600.0))
    assert win.height == expected


def test_layout_lets_a_one_orbit_filter_skip_row_groups(tmp_path: Path) -> None:
    """Row groups hold 16 orbits each with min/max statistics, so one orbit touches one group."""
    folder = write_dataset(TwoBodySpec(orbits=100, seed=6), tmp_path)
    meta = pq.ParquetFile(folder / SAMPLES_FILE).metadata
    assert meta.num_row_groups == 7
    col = meta.schema.names.index("orbit_id")
    holding = [g for g in range(meta.num_row_groups)
               if meta.row_group(g).column(col).statistics.min <= 40 <= meta.row_group(g).column(col).statistics.max]
    assert holding == [2]
    ds = open_dataset(folder)
    plan = ds.scan().filter(pl.col("orbit_id") == 40).explain()
    assert plan.startswith("Parquet SCAN") and 'SELECTION: col("orbit_id") == 40' in plan  # pushed down


def _bytes_read() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_reading_one_orbit_reads_a_small_part_of_the_file(tmp_path: Path) -> None:
    folder = write_dataset(TwoBodySpec(orbits=160, seed=2), tmp_path)  # 10 row groups
    ds = open_dataset(folder)
    size = (folder / SAMPLES_FILE).stat().st_size
    before = _bytes_read()
    assert ds.orbit(77).height == 360
    one = _bytes_read() - before
    before = _bytes_read()
    assert ds.scan().collect().height == 160 * 360
    full = _bytes_read() - before
    assert full >= 0.9 * size
    assert one < 0.2 * size, (one, size)


def test_standard_suite_names_and_independent_seeds() -> None:
    names = [s.name for s in STANDARD_SUITE]
    base = [f"complex_TBP_planar_{n}_{split}" for split in ("train", "test") for n in (1, 10, 100)]
    turned = [f"complex_TBP_planar_{turn}_{n}_test" for turn in ("rotated", "mirrored") for n in (1, 10, 100)]
    assert sorted(names) == sorted(base + turned)
    assert len({s.seed for s in STANDARD_SUITE if s.orientation == "fixed"}) == 6
    # a turned test set is drawn from its base set's seed: the same orbits, turned
    by_name = {s.name: s for s in STANDARD_SUITE}
    assert by_name["complex_TBP_planar_rotated_10_test"].seed == by_name["complex_TBP_planar_10_test"].seed


def test_rotated_and_mirrored_sets_hold_the_base_orbits_turned() -> None:
    """Same a, e, nu0 as the base set; rotated = the base states turned by each orbit's argp about
    z; mirrored = the base states with y, vy negated (clockwise); any = a mix of both senses."""
    from trainables.twobody.dataset import generate_arrays, spec_from_name

    base, base_el = generate_arrays(spec_from_name("complex_TBP_planar_10_test"))
    rot, rot_el = generate_arrays(spec_from_name("complex_TBP_planar_rotated_10_test"))
    mir, mir_el = generate_arrays(spec_from_name("complex_TBP_planar_mirrored_10_test"))
    _, any_el = generate_arrays(spec_from_name("complex_TBP_planar_any_10_test"))
    for el in (rot_el, mir_el, any_el):
        for key in ("a", "e", "nu0", "raan"):
            np.testing.assert_array_equal(el[key], base_el[key])
    assert np.ptp(rot_el["argp"]) > 1.0 and np.all(base_el["argp"] == 0)
    c, s = np.cos(rot_el["argp"])[:, None], np.sin(rot_el["argp"])[:, None]
    for k in (0, 3):                                   # position, then velocity
        x, y = base.states[..., k], base.states[..., k + 1]
        np.testing.assert_allclose(rot.states[..., k], c * x - s * y, rtol=0, atol=1e-6 * np.abs(x).max())
        np.testing.assert_allclose(rot.states[..., k + 1], s * x + c * y, rtol=0, atol=1e-6 * np.abs(x).max())
    flip = np.array([1, -1, 1, 1, -1, 1])
    np.testing.assert_allclose(mir.states, base.states * flip, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(mir.acc, base.acc * flip[:3], rtol=1e-12, atol=1e-15)
    h_z = mir.states[..., 0] * mir.states[..., 4] - mir.states[..., 1] * mir.states[..., 3]
    assert np.all(h_z < 0)                                          # clockwise, every sample
    senses = set(np.round(np.cos(any_el["i"])).astype(int))
    assert senses == {1, -1}


def test_orientation_is_refused_for_3d_and_unknown_values_before_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="applies to planar orbits"):
        TwoBodySpec(planar=False, orientation="rotated")
    with pytest.raises(ConfigError, match="allowed: fixed, rotated, mirrored, any"):
        TwoBodySpec(orientation="sideways")
    # the default orientation keeps the parameters of datasets written before orientations existed
    assert "orientation" not in TwoBodySpec().params()
    assert TwoBodySpec(orientation="rotated").params()["orientation"] == "rotated"


def test_a_node_refuses_a_dataset_whose_hash_differs_from_the_drivers(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster the driver records content hashes (DYNSWEEP_DATASET_HASHES); a node generating
    or reading another version of a named dataset fails with a DataError instead of training on it."""
    import json

    from trainables.registry import family_datasets
    from trainables.twobody.dataset import load_named

    monkeypatch.delenv("DYNSWEEP_DATASET_HASHES", raising=False)
    config = {"datasets_root": str(tmp_path), "train_dataset": "simple_TBP_planar_1_train", "val_dataset": None,
              "test_datasets": ["simple_TBP_planar_1_test"]}
    hashes = family_datasets("twobody", config)                     # generated on first use, like a node does
    assert set(hashes) == {"simple_TBP_planar_1_train", "simple_TBP_planar_1_test"}
    assert family_datasets("dummy", {}) == {}
    monkeypatch.setenv("DYNSWEEP_DATASET_HASHES", json.dumps(hashes))
    assert load_named("simple_TBP_planar_1_train", tmp_path).content_hash == hashes["simple_TBP_planar_1_train"]
    monkeypatch.setenv("DYNSWEEP_DATASET_HASHES", json.dumps({"simple_TBP_planar_1_train": "0" * 64}))
    with pytest.raises(DataError, match="the nodes do not read the same data"):
        load_named("simple_TBP_planar_1_train", tmp_path)


def test_publish_folder_swaps_a_dataset_folder_in_one_step(tmp_path: Path) -> None:
    from trainables.common.errors import DatasetExistsError
    from trainables.common.parquet_store import publish_folder

    final, new = tmp_path / "set", tmp_path / ".set.tmp"
    final.mkdir()
    (final / "a.parquet").write_text("old")
    new.mkdir()
    (new / "a.parquet").write_text("new")
    with pytest.raises(DatasetExistsError, match="refusing to overwrite"):
        publish_folder(new, final, overwrite=False)
    assert (final / "a.parquet").read_text() == "old" and (new / "a.parquet").read_text() == "new"
    publish_folder(new, final, overwrite=True)
    assert (final / "a.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]      # the old folder is gone, nothing aside
