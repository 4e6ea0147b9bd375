"""Bad sweep-YAML input is one line on stderr, exit status 2, before any work, writing nothing.

Everything runs in-process through ``search.cli.main`` (no Ray is started): binary and
non-UTF-8 files, non-string keys, deep nesting and alias bombs, wrongly typed ``--set`` values,
``when`` cycles, folders given as files, unsafe sweep names, huge ``choice`` lists, a corrupt
dataset; plus what is accepted: ``1e-6`` numbers, env spellings, shipped search spaces by name,
and the ``max_t`` warning. A property test feeds random bytes and random YAML documents.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import importlib.util
import random
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import search.cli as cli
from search.spec import load_spec
from trainables.common.errors import DynsweepError

ROOT = Path(__file__).resolve().parents[1]

DUMMY: dict[str, Any] = {
    "name": "bad-inputs",
    "family": "dummy",
    "base": {"steps": 20, "report_every": 1},
    "space": {"x": {"uniform": [0.0, 1.0]}, "choice": {"choice": ["a", "b"]}},
    "search": {"algorithm": "optuna", "seed": 0, "metric": "loss", "mode": "min", "num_samples": 4},
    "scheduler": {"type": "fifo"},
    "resources": {"cpu": 1, "gpu": 0},
}
TWOBODY: dict[str, Any] = {
    "name": "tb",
    "family": "twobody",
    "base": {"steps": 100, "report_every": 10, "train_dataset": "complex_TBP_planar_1_train",
             "test_datasets": ["complex_TBP_planar_1_test"]},
    "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "depth": {"choice": [2, 3]}},
    "search": {"metric": "val_loss", "mode": "min", "num_samples": 4},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder with its own (empty) datasets root."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(tmp_path / "datasets"))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if not p.is_symlink()}


@contextlib.contextmanager
def _writes_nothing(folder: Path) -> Iterator[None]:
    before = _snapshot(folder)
    yield
    assert _snapshot(folder) == before, "the command wrote into the folder"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys: pytest.CaptureFixture[str], folder: Path, *argv: str) -> str:
    """Run ``argv``; assert status 2, one ``dynsweep: error:`` line, no traceback, nothing written."""
    with _writes_nothing(folder):
        code, out, err = _cli(capsys, *argv)
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and err.startswith("dynsweep: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def _write(folder: Path, data: Any, name: str = "sweep.yaml") -> Path:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# 1. Files that are not UTF-8 text

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa"
BINARY = {
    "random": random.Random(7).randbytes(4096),
    "png": PNG,
    "gzip": gzip.compress(b"name: x\nfamily: dummy\n"),
    "utf16": "name: x\nfamily: dummy\n".encode("utf-16"),
    "latin1": "name: caf\xe9\nfamily: dummy\n".encode("latin-1"),
    "nul": b"name: x\x00\n",
    "control": b"name: \x07bell\n",
}


@pytest.mark.parametrize("kind", sorted(BINARY))
@pytest.mark.parametrize("command", ["validate", "launch"])
def test_binary_and_non_utf8_files_are_one_line_errors(kind: str, command: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BINARY[kind], "sweep.bin")
    err = _refused(capsys, tmp_path, command, str(path))
    assert f"{path}:" in err
    if kind != "control":
        assert "not a UTF-8 text sweep YAML" in err or "a binary file" in err, err


# 2. Mapping keys that are not strings, at any level

@pytest.mark.parametrize("text,where", [
    ("1: x\n", "mapping key 1"),
    ("[a]: b\n", "mapping key [...] (a list)"),
    ("null: 3\n", "mapping key null"),
    ("true: 1\n", "mapping key true"),
    ("name: t\nfamily: dummy\nbase: {steps: 5, 2: x}\n", "base: mapping key 2"),
    ("name: t\nspace:\n  x:\n    when: {~: 1}\n", "space.x.when: mapping key ~"),
    ("name: t\nsearch: {? {a: 1} : 2}\n", "search: mapping key {...} (a mapping)"),
    ("name: t\nname: u\n", "name: given twice (lines 1 and 2)"),
])
def test_keys_that_are_not_strings_name_the_key_path(text: str, where: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, text)
    err = _refused(capsys, tmp_path, "validate", str(path))
    assert f"{path}: {where}" in err, err


# 3. Deep nesting and alias bombs

def _billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text,message", [
    ("[" * 10000 + "]" * 10000, "nest"),           # libyaml's own limit, or ours
    ("{a: " * 5000 + "1" + "}" * 5000, "nest"),
    ("".join(f"{' ' * i}k{i}:\n" for i in range(3000)) + " " * 3000 + "v\n", "nested more than 64 levels"),
    ("base: [" + "[" * 100 + "]" * 100 + "]\n", "nested more than 64 levels"),
    (_billion_laughs(), "billion laughs"),
    ("a: &x [1, *x]\n", "recursive alias"),
])
def test_deep_nesting_and_alias_bombs_are_refused(text: str, message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, text)
    err = _refused(capsys, tmp_path, "validate", str(path))
    assert message in err and "RecursionError" not in err, err


# 4. Wrongly typed keys, in the file or through --set

@pytest.mark.parametrize("override,where", [
    ("search.seed=abc", "search.seed: 'abc' is not an integer"),
    ("search.num_samples=2.5", "search.num_samples: 2.5 is not an integer"),
    ("search.metric=[loss]", "search.metric: ['loss'] is never reported"),
    ("scheduler.time_attr={a: 1}", "scheduler.time_attr: {'a': 1} is never reported"),
    ("max_concurrent=two", "max_concurrent: 'two' is not an integer"),
    ("reuse_actors=maybe", "reuse_actors: expected true or false, got 'maybe'"),
    ("tracking.uri=[1]", "tracking.uri: expected a string or null"),
    ("storage=[runs]", "storage: expected a string"),
    ("name=5", "name: is required (a non-empty string), got 5"),
    ("family=[dummy]", "family: is required (a non-empty string)"),
    ("base.steps=x", "base.steps: expected an integer, got 'x'"),
    ("resources.cpu=1e400", "resources.cpu: inf is not a number"),
    ("space.x.uniform=[0, abc]", "space.x.uniform: 'abc' is not a number"),
    ("base.steps.x=1", "base.steps is a value (20), not a mapping or list"),
    ("space.x.uniform.0.y=1", "space.x.uniform.0 is a value (0.0), not a mapping or list"),
    ("space.x.uniform.²=1", "'²' is not an index of a list of 2"),
    ("space.choice.when={x: []}", "space.choice.when.x: is an empty list"),
    ("a..b=1", "expected key=value with a dotted key"),
    ("base.steps=[unclosed", "the value: not valid YAML"),
    ("base={1: 2}", "the value: mapping key 1 (line 1) is not a string"),
])
def test_wrongly_typed_values_name_the_key_and_the_type(override: str, where: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, DUMMY)
    err = _refused(capsys, tmp_path, "validate", str(path), "--set", override)
    assert where in err, err


# 5. Numbers as people write them

def test_exponent_numbers_are_numbers_in_files_and_overrides(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    text = """name: numbers
family: twobody
base: {steps: 1_000, report_every: 1e2, rtol: 1e-6, atol: 1E-8, mse_weight: .5,
       train_dataset: complex_TBP_planar_1_train, test_datasets: [complex_TBP_planar_1_test]}
space:
  lr: {loguniform: [1e-5, 1e-2]}
  grad_clip: {uniform: [5e-3, 1E1]}
  width: {qrandint: [1.6e1, 6.4e1, 1.6e1]}
search: {metric: val_loss, num_samples: 1e1}
"""
    path = _write(tmp_path, text)
    spec = load_spec(path)
    assert spec.base["rtol"] == 1e-6 and spec.base["atol"] == 1e-8 and spec.base["mse_weight"] == 0.5
    assert spec.base["steps"] == 1000 and spec.num_samples == 10
    params = {p.name: p for p in spec.params}
    assert params["lr"].args == (1e-5, 1e-2) and params["grad_clip"].args == (5e-3, 10.0)
    assert params["width"].args == (16, 64, 16) and all(type(a) is int for a in params["width"].args)
    spec = load_spec(path, ["base.rtol=1e-7", "space.lr={loguniform: [1e-6, 1e-3]}", "search.num_samples=2e1"])
    assert spec.base["rtol"] == 1e-7 and spec.num_samples == 20
    assert {p.name: p for p in spec.params}["lr"].args == (1e-6, 1e-3)
    code, out, err = _cli(capsys, "validate", str(path), "--set", "base.rtol=1e-6", "--set", "search.num_samples=2")
    assert code == 0 and "Traceback" not in err, err


def test_strings_that_only_look_like_dates_or_numbers_stay_what_yaml_says(tmp_path: Path) -> None:
    from search.yaml_io import loads

    doc = loads("a: 2024-01-02\nb: '1e-6'\nc: 1.5.2\nd: 0x1f\ne: =\nf: 1e\ng: -.5\nh: +1.5e+3\n", "t")
    assert doc == {"a": "2024-01-02", "b": "1e-6", "c": "1.5.2", "d": 31, "e": "=", "f": "1e", "g": -0.5,
                   "h": 1500.0}


# 6. when-conditions in a cycle

@pytest.mark.parametrize("space,cycle", [
    ({"choice": {"choice": ["a", "b"], "when": {"fail": "none"}},
      "fail": {"choice": ["none", "raise"], "when": {"choice": "a"}}}, "choice -> fail -> choice"),
    ({"x": {"choice": [0.0, 1.0], "when": {"choice": "a"}},
      "choice": {"choice": ["a", "b"], "when": {"fail": "none"}},
      "fail": {"choice": ["none", "raise"], "when": {"x": 0.0}}}, "x -> choice -> fail -> x"),
    ({"choice": {"choice": ["a", "b"], "when": {"choice": "a"}}}, "choice -> choice"),
])
def test_when_cycles_are_refused_naming_the_cycle(space: dict[str, Any], cycle: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {**DUMMY, "space": space})
    err = _refused(capsys, tmp_path, "validate", str(path))
    assert "conditions form a cycle" in err and cycle in err, err


# 7. Folders, missing and unreadable files

def test_a_folder_a_missing_file_and_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "spaces"
    folder.mkdir()
    assert "spaces: is a directory, not a sweep YAML" in _refused(capsys, tmp_path, "validate", str(folder))
    assert "launch" and "is a directory" in _refused(capsys, tmp_path, "launch", str(folder))
    assert f"{folder / 'x.yaml'}: no such file" in _refused(capsys, tmp_path, "validate", str(folder / "x.yaml"))
    path = _write(tmp_path, DUMMY)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # chmod 000 does not stop root
    assert f"{path}: cannot be read (permission denied)" in _refused(capsys, tmp_path, "validate", str(path))


def test_empty_and_non_mapping_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is empty" in _refused(capsys, tmp_path, "validate", str(_write(tmp_path, "")))
    assert "expected a mapping at the top level, got list" in _refused(
        capsys, tmp_path, "validate", str(_write(tmp_path, "- a\n")))
    assert "expected a single document" in _refused(
        capsys, tmp_path, "validate", str(_write(tmp_path, "name: a\n---\nname: b\n")))


# 8. Sweep names are folder names

@pytest.mark.parametrize("name", ["..", "../x", "a/b", "a\\b", ".hidden", "   ", "a b", "a..b", "x" * 101,
                                  "na\u00efve", "a:b", "a*b", "tab\t"])
def test_unsafe_sweep_names_are_refused(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, {**DUMMY, "name": name})
    err = _refused(capsys, tmp_path, "launch", str(path))
    assert f"{path}: name: " in err and "not a safe folder name" in err and "letters, digits" in err, err


def test_safe_sweep_names_are_accepted(tmp_path: Path) -> None:
    for name in ("qs20", "twobody-asha_v1.2", "A.b-c_d", "_x"):
        assert load_spec(_write(tmp_path, {**DUMMY, "name": name})).name == name


# 9. Huge choice lists

def test_a_huge_choice_list_is_refused_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = "\n".join(f"      - {i * 1e-6!r}" for i in range(200_000))
    head = yaml.safe_dump({k: v for k, v in DUMMY.items() if k != "space"})
    path = _write(tmp_path, f"{head}space:\n  x:\n    choice:\n{values}\n")
    err = _refused(capsys, tmp_path, "validate", str(path))
    assert "space.x.choice: more than 100000 entries" in err, err


def test_a_large_choice_list_validates_in_linear_time(tmp_path: Path) -> None:
    """20000 distinct floats: each value is checked by the family, without re-resolving its types."""
    head = yaml.safe_dump({k: v for k, v in DUMMY.items() if k != "space"})
    values = [repr(i * 1e-6) for i in range(20_000)]
    spec = load_spec(_write(tmp_path, f"{head}space:\n  x: {{choice: [{', '.join(values)}]}}\n"))
    assert len(spec.params[0].args) == 20_000 and spec.params[0].args[-1] == 19_999e-6
    values[-1] = "oops"
    with pytest.raises(DynsweepError, match="space.x: value 'oops' is refused by the dummy family"):
        load_spec(_write(tmp_path, f"{head}space:\n  x: {{choice: [{', '.join(values)}]}}\n"))


# 10. scheduler.max_t beyond the trial's length

def _asha(max_t: int, time_attr: str = "training_iteration", **base: Any) -> dict[str, Any]:
    data = copy.deepcopy(DUMMY)
    data["base"] = {"steps": 200, "report_every": 1, **base}
    data["scheduler"] = {"type": "asha", "grace_period": 10, "reduction_factor": 3, "max_t": max_t,
                         "time_attr": time_attr}
    data["search"]["metric"] = "loss"
    return data


def test_max_t_beyond_the_trial_length_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _asha(400))
    with _writes_nothing(tmp_path):
        code, out, err = _cli(capsys, "validate", str(path))
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dynsweep: warning: ") and f"{path}: scheduler.max_t=400" in err
    assert "200 reports" in err and "recorded as completed" in err and "scheduler.max_t: 200" in err

    path = _write(tmp_path, _asha(40, report_every=10))  # 20 reports, the last at step 200
    assert "exceeds the trial length (20 reports" in _cli(capsys, "validate", str(path))[2]
    path = _write(tmp_path, _asha(400, time_attr="step", report_every=10))
    assert "its last report is at step 200" in _cli(capsys, "validate", str(path))[2]


@pytest.mark.parametrize("data", [
    _asha(200),                                                         # exactly the length
    _asha(400, time_attr="time_total_s"),                               # not in reports
    {**_asha(400), "space": {"steps": {"choice": [100, 300]}}},          # the length is swept
    {**_asha(400), "scheduler": {"type": "fifo", "max_t": 400}},        # FIFO ignores max_t
])
def test_no_max_t_warning_when_it_fits_or_is_unknown(data: dict[str, Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "validate", str(_write(tmp_path, data)))
    assert code == 0 and "warning" not in err, err


def test_max_t_warning_for_a_shipped_space_and_phases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "validate", "quickstart", "--set", "scheduler.max_t=800")
    assert code == 0 and "scheduler.max_t=800 exceeds the trial length" in err and "step 400" in err, err
    code, _, err = _cli(capsys, "validate", "twobody_seed_grid", "--set", "scheduler={type: asha, max_t: 4000, "
                                                                          "time_attr: step, grace_period: 250}")
    assert code == 0 and "its last report is at step 3000" in err, err  # three phases of 1000 steps


# 11. A dataset that exists but cannot be read

@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_dataset_is_refused_before_any_trial_runs(damage: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "datasets" / "complex_TBP_planar_1_train"
    folder.mkdir(parents=True)
    good = folder / "orbits.parquet"
    pq.write_table(pa.table({"a": list(range(1000))}), good)
    bad = folder / "samples.parquet"
    if damage == "garbage":
        bad.write_bytes(b"not parquet at all " * 100)
    else:
        pq.write_table(pa.table({"a": list(range(1000))}), bad)
        bad.write_bytes(bad.read_bytes()[:300])
    path = _write(tmp_path, TWOBODY)
    for command in ("validate", "launch"):
        err = _refused(capsys, tmp_path, command, str(path))
        assert f"{path}: dataset 'complex_TBP_planar_1_train': {bad}: not a readable Parquet file" in err, err
        assert "dynsweep data twobody" in err and "generated again on first use" in err, err


def test_missing_datasets_are_left_for_first_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate reads footers only: a missing dataset is neither an error nor generated."""
    path = _write(tmp_path, TWOBODY)
    with _writes_nothing(tmp_path):
        code, _, err = _cli(capsys, "validate", str(path))
    assert code == 0, err
    assert not (tmp_path / "datasets").exists()


def _derived(family: str, base: dict[str, Any]) -> dict[str, Any]:
    """A sweep of ``family`` over its default datasets (no dataset named in the config)."""
    return {"name": f"derived-{family}", "family": family, "base": base,
            "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}},
            "search": {"metric": "train_loss", "mode": "min", "num_samples": 2}}


@pytest.mark.parametrize("family", ["pendulum", "worldmodels", "visual"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("root_from", ["env", "base"])
def test_a_corrupt_derived_dataset_is_refused(family: str, damage: str, root_from: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A dataset the family names itself (pendulum's default file, worldmodels' and visual's default
    folder) is found through its ``dataset_paths`` hook and refused like a named one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainables.registry import FAMILIES, family_dataset_paths

    root = tmp_path / ("datasets" if root_from == "env" else "my-datasets")
    base = {**FAMILIES[family].smoke, **({"datasets_root": str(root)} if root_from == "base" else {})}
    (where,) = family_dataset_paths(family, base)
    assert where.parent == root, where
    folder = family in ("worldmodels", "visual")
    bad = where / "val.parquet" if folder else where
    bad.parent.mkdir(parents=True)
    if folder:
        for split in ("train", "test"):
            pq.write_table(pa.table({"a": list(range(100))}), where / f"{split}.parquet")
    if damage == "garbage":
        bad.write_bytes(b"not parquet at all " * 100)
    else:
        pq.write_table(pa.table({"a": list(range(1000))}), bad)
        bad.write_bytes(bad.read_bytes()[:300])
    path = _write(tmp_path, _derived(family, base))
    err = _refused(capsys, tmp_path, "validate", str(path))
    assert f"{path}: dataset {where.name.removesuffix('.parquet')!r}: {bad}: not a readable Parquet file" in err, err
    command = {"pendulum": "pendulum", "worldmodels": "worlds", "visual": "frames"}[family]
    assert f"`dynsweep data {command} ... --overwrite`" in err, err
    assert "generated again on first use" in err, err


def test_dataset_paths_hooks_compute_paths_only(tmp_path: Path) -> None:
    """Each family's ``dataset_paths`` hook names its files under the root without creating any."""
    from trainables.registry import FAMILIES, family_dataset_paths

    root = tmp_path / "datasets"
    root.mkdir()
    for family in ("twobody", "pendulum", "regression", "worldmodels", "visual"):
        for base in ({**FAMILIES[family].smoke}, {**FAMILIES[family].smoke, "datasets_root": str(root)}):
            paths = family_dataset_paths(family, base)
            assert paths and all(isinstance(p, Path) and p.parent == root for p in paths), (family, paths)
    auto = {**FAMILIES["twobody"].smoke, "val_dataset": "auto", "val_fraction": 0.0}
    assert root / "complex_TBP_planar_1_val" in family_dataset_paths("twobody", auto)
    assert list(root.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["datasets"]


# 12. World-model environment spellings

def test_env_names_accept_the_spellings_users_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trainables.worldmodels.config import WorldConfig

    for spelling in ("three_body", "three-body", "ThreeBody", "THREEBODY", "threebody", "Three Body"):
        assert WorldConfig.from_dict({"env": spelling}).env == "threebody"
    data = {"name": "wm", "family": "worldmodels", "base": {"steps": 20, "report_every": 10},
            "space": {"env": {"choice": ["three_body", "Pendulum", "space-ship", "oscillator"]}},
            "search": {"metric": "val_loss"}}
    code, _, err = _cli(capsys, "validate", str(_write(tmp_path, data)))
    assert code == 0, err
    err = _refused(capsys, tmp_path, "validate", str(_write(tmp_path, {**data, "base": {"env": "moon"}})))
    assert "base.env: 'moon' is not allowed; allowed: oscillator, pendulum, spaceship, threebody" in err \
        or "config.env: 'moon' is not allowed; allowed: oscillator, pendulum, spaceship, threebody" in err, err


# 13. Shipped search spaces by name, and `dynsweep examples`

def test_shipped_spaces_resolve_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for arg in ("quickstart", "quickstart.yaml", "twobody_asha"):
        code, out, err = _cli(capsys, "validate", arg)
        assert code == 0 and "valid twobody sweep" in out, (arg, out, err)
    err = _refused(capsys, tmp_path, "validate", "quickstrat")
    assert "quickstrat: no such file, and not the name of a shipped search space" in err
    assert "quickstart" in err and "twobody_asha" in err and "dynsweep examples" in err
    assert "no_such_dir/x.yaml: no such file" in _refused(capsys, tmp_path, "validate", "no_such_dir/x.yaml")
    (tmp_path / "quickstart.yaml").write_text("name: [\n")  # a local file of that name wins
    assert "quickstart.yaml: not valid YAML" in _refused(capsys, tmp_path, "validate", "quickstart.yaml")


def test_examples_lists_the_shipped_spaces_with_family_and_description(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, "examples")
    assert code == 0, err
    shipped = sorted(p.stem for p in (ROOT / "search_spaces").glob("*.yaml"))
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("run one")}
    assert sorted(lines) == shipped
    assert lines["quickstart"].split()[1] == "twobody" and "A few minutes" in lines["quickstart"]
    assert lines["worldmodels"].split()[1] == "worldmodels"


def test_shipped_spaces_are_package_data() -> None:
    spec = importlib.util.find_spec("search_spaces")
    assert spec is not None and (ROOT / "search_spaces" / "__init__.py").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    assert "search_spaces" in setuptools["packages"]["find"]["include"]
    assert "*.yaml" in setuptools["package-data"]["*"]


# 14. Dependency bounds cover what the tests run with

def test_dependency_versions_are_bounded_to_what_is_tested() -> None:
    from importlib.metadata import version

    from packaging.requirements import Requirement

    deps = {Requirement(d).name: Requirement(d) for d in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name in ("ray", "optuna", "mlflow", "polars"):
        spec = deps[name].specifier
        assert any(s.operator == "<" for s in spec) and any(s.operator == ">=" for s in spec), (name, spec)
        assert spec.contains(version(name)), (name, str(spec), version(name))


# Property: random bytes and random YAML documents end in status 0 or 2, never a traceback

_KEYS = ["name", "family", "base", "space", "search", "scheduler", "resources", "when", "choice", "uniform",
         "grid", "randint", "qrandint", "loguniform", "steps", "x", "metric", "max_t", "type", "seed", "env"]
_WORDS = ["a", "dummy", "twobody", "loss", "asha", "fifo", "optuna", "grid", "1e-6", "..", "", " ", "\u00e9",
          "none", "raise", "min", "max", "step", "training_iteration", "complex_TBP_planar_1_train"]


def _random_value(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, 1, -1, 2, 7, 10 ** 30, rng.randrange(-1000, 1000)])
    if kind == 2:
        return rng.choice([0.0, 0.5, -1.5, 1e-6, 1e300, float("inf"), float("nan"), rng.random()])
    if kind in (3, 4, 5):
        return rng.choice(_WORDS + _KEYS)
    if kind in (6, 7):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    out: dict[Any, Any] = {}
    for _ in range(rng.randrange(4)):
        key = rng.choice(_KEYS) if rng.random() < 0.8 else rng.choice([1, None, True, 2.5, "k"])
        out[key] = _random_value(rng, depth + 1)
    return out


def _random_document(rng: random.Random) -> str:
    data = copy.deepcopy(rng.choice([DUMMY, TWOBODY, _asha(400)]))
    for _ in range(rng.randrange(1, 4)):  # replace, add or delete something at a random place
        node: Any = data
        for _ in range(rng.randrange(3)):
            children = [k for k, v in node.items() if isinstance(v, dict)] if isinstance(node, dict) else []
            if not children:
                break
            node = node[rng.choice(children)]
        if not isinstance(node, dict):
            continue
        action = rng.randrange(3)
        if action == 0 and node:
            node[rng.choice(list(node))] = _random_value(rng, 1)
        elif action == 1:
            key = rng.choice(_KEYS) if rng.random() < 0.85 else rng.choice([1, None, False, 3.5])
            node[key] = _random_value(rng, 1)
        elif node:
            del node[rng.choice(list(node))]
    text = yaml.safe_dump(data, default_flow_style=rng.choice([None, True, False]), allow_unicode=True)
    if rng.random() < 0.3:  # a textual mutation: a YAML-significant character somewhere
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(["&a ", "*a", "!!int ", "? ", "[", "}", ": ", "- ", "\t", "'", "<<: *a\n",
                                      "\n  -", "%YAML 1.1\n", "---\n", "#", "|", "\x85"]) + text[i:]
    return text


def _random_bytes(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    n = rng.randrange(0, 400)
    if kind == 0:
        return rng.randbytes(n)
    if kind == 1:
        return bytes(rng.randrange(32, 127) for _ in range(n))
    if kind == 2:
        return "".join(rng.choice("[]{}:,-&*!?|>'\"#%@` \n\t\nab01.e+") for _ in range(n)).encode()
    data = bytearray(yaml.safe_dump(DUMMY).encode())
    for _ in range(rng.randrange(1, 6)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def test_random_bytes_and_documents_never_give_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "build_parser", functools.lru_cache(maxsize=1)(cli.build_parser))
    rng = random.Random(20240519)
    inputs: list[bytes] = [_random_bytes(rng) for _ in range(200)]
    inputs += [_random_document(rng).encode("utf-8", "surrogatepass") for _ in range(200)]
    path = tmp_path / "random.yaml"
    codes = []
    for i, data in enumerate(inputs):
        path.write_bytes(data)
        with _writes_nothing(tmp_path):
            try:
                code = cli.main(["validate", str(path)])
            except Exception as err:  # noqa: BLE001 - any escape is the failure this test looks for
                pytest.fail(f"input {i} ({data[:200]!r}) raised {type(err).__name__}: {err}")
        out, err = capsys.readouterr()
        assert code in (0, 2), (i, data[:200], err)
        assert "Traceback" not in err, (i, data[:200], err)
        errors = [line for line in err.splitlines() if line.startswith("dynsweep: error:")]
        assert code == 0 or len(errors) == 1, (i, data[:200], err)
        codes.append(code)
    assert codes.count(2) > 100 and codes.count(0) >= 1, codes  # most are refused, some are valid sweeps


def test_random_override_values_never_give_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "build_parser", functools.lru_cache(maxsize=1)(cli.build_parser))
    rng = random.Random(99)
    path = _write(tmp_path, DUMMY)
    keys = ["name", "family", "base", "base.steps", "space", "space.x", "space.x.uniform", "space.x.uniform.0",
            "space.choice.when", "search", "search.seed", "search.metric", "scheduler", "scheduler.max_t",
            "resources.cpu", "tracking", "storage", "reuse_actors", "retries", "x.y.z"]
    for i in range(60):
        value = yaml.safe_dump(_random_value(rng, 1), default_flow_style=True).strip().removesuffix("...").strip()
        override = f"{rng.choice(keys)}={value}"
        try:
            code = cli.main(["validate", str(path), "--set", override])
        except Exception as err:  # noqa: BLE001
            pytest.fail(f"--set {override!r} raised {type(err).__name__}: {err}")
        err = capsys.readouterr().err
        assert code in (0, 2) and "Traceback" not in err, (override, err)


def test_loader_is_the_one_place_spec_yaml_is_read() -> None:
    """spec.py and overrides.py read YAML only through search.yaml_io."""
    for module in ("search/spec.py", "search/overrides.py"):
        text = (ROOT / module).read_text()
        assert "yaml.safe_load" not in text and "import yaml" not in text, module
    assert sys.modules["search.spec"].load_file.__module__ == "search.yaml_io"
