"""Sweep YAML validation: every mistake is refused before Ray starts, naming file, key and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.spec import check_resources, load_spec
from trainables.common.errors import ConfigError

GOOD: dict[str, Any] = {
    "name": "t",
    "family": "twobody",
    "base": {"steps": 100, "report_every": 10},
    "space": {
        "feature": {"choice": ["sph_4D_rinv_vel", "sph_4D_rinv_vel_harmonics"]},
        "harmonic_order": {"randint": [2, 9], "when": {"feature": "sph_4D_rinv_vel_harmonics"}},
        "loss": {"choice": ["percent_error", "percent_error_plus_nmse"]},
        "mse_weight": {"uniform": [0.1, 2.0], "when": {"loss": "percent_error_plus_nmse"}},
        "lr": {"loguniform": [1.0e-4, 1.0e-2]},
        "width": {"qrandint": [16, 64, 16]},
        "segment_length": {"grid": [4, 10, 18]},
        "depth": 2,
    },
    "search": {"algorithm": "optuna", "seed": 0, "metric": "val_loss", "mode": "min", "num_samples": 8},
    "scheduler": {"type": "asha", "grace_period": 10, "reduction_factor": 3, "max_t": 100, "time_attr": "step"},
    "resources": {"cpu": 1, "gpu": 0},
    "max_concurrent": 2,
}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _mutate(path_keys: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node = data
    keys = path_keys.split(".")
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


class _Delete:
    """Marks a key to remove; a stable repr keeps test ids equal across pytest-xdist workers."""

    def __repr__(self) -> str:
        return "<delete>"


_DELETE = _Delete()


def test_good_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.family == "twobody" and spec.scheduler == "asha" and len(spec.params) == 8
    by_name = {p.name: p for p in spec.params}
    assert by_name["harmonic_order"].when == {"feature": ("sph_4D_rinv_vel_harmonics",)}
    assert by_name["depth"].kind == "fixed"


MALFORMED = [
    ("nme", "t", "unknown key (did you mean 'name'?)"),
    ("family", "twobdy", "unknown family 'twobdy' (did you mean 'twobody'?)"),
    ("name", _DELETE, "name: is required"),
    ("space.feature", {"choice": []}, "space.feature.choice: is empty"),
    ("space.lr", {"loguniform": [1e-2, 1e-4]}, "bounds reversed"),
    ("space.lr", {"loguniform": [0, 1e-2]}, "loguniform needs low > 0"),
    ("space.lr", {"lognormal": [0, 1]}, "needs exactly one distribution (did you mean 'loguniform'?); allowed: choice, grid"),
    ("space.lr", {"uniform": [1e-4]}, "expected [low, high]"),
    ("space.width", {"qrandint": [16, 60, 16]}, "q=16 must be >= 1 and divide high - low = 44"),
    ("space.width", {"randint": [16.5, 64]}, "16.5 is not an integer"),
    ("space.lr", {"uniform": ["a", 1]}, "'a' is not a number"),
    ("space.hed", {"choice": ["rtn"]}, "space.hed: is not a twobody config key (did you mean 'head'?)"),
    ("space.feature", {"choice": ["sph_4D_rinv_vel", "polar"]}, "value 'polar' is refused by the twobody family"),
    ("space.segment_length", {"grid": [18, 400]}, "segment_length=400 yields zero segments"),
    ("space.mse_weight", {"uniform": [0.1, 2], "when": {"los": "x"}}, "when.los: is not a swept parameter"),
    ("space.mse_weight", {"uniform": [0.1, 2], "when": {"loss": "l1"}}, "'l1' is never a value of loss"),
    ("base.widht", 32, "unknown key 'widht' (did you mean 'width'?)"),
    ("base.width", "wide", "base.width: expected an integer, got 'wide'"),
    ("search.algorithm", "bayes", "'bayes' is not allowed; allowed: optuna, random, grid"),
    ("search.mode", "minimum", "'minimum' is not allowed; allowed: min, max"),
    ("search.metric", "val_los", "'val_los' is never reported by the twobody family (did you mean 'val_loss'?)"),
    ("search.num_samples", 0, "search.num_samples: 0 must be >= 1"),
    ("search.algorithm", "grid", "grid search needs grid/choice parameters only"),
    ("search.sed", 1, "search.sed: unknown key (did you mean 'seed'?)"),
    ("scheduler.type", "hyperband", "'hyperband' is not allowed; allowed: asha, fifo"),
    ("scheduler.grace_period", 500, "scheduler.grace_period: 500 must be in [1, max_t=100]"),
    ("scheduler.reduction_factor", 1, "reduction_factor: 1 must be > 1"),
    ("scheduler.time_attr", "epochs", "'epochs' is never reported"),
    ("resources.cpu", 0, "resources.cpu: 0 must be > 0"),
    ("resources.gpu", 1.5, "must be a fraction in [0, 1] or a whole number"),
    ("resources.gpus", 1, "resources.gpus: unknown key (did you mean 'gpu'?)"),
    ("max_concurrent", 0, "must be >= 1"),
    ("search.points_to_evaluate", [{"lrr": 0.1}], "points_to_evaluate[0].lrr: is not a swept parameter"),
    ("trial_time_limit_s", -5, "trial_time_limit_s: -5 must be > 0"),
    ("name", "../t", "name: '../t' is not a safe folder name"),
    ("search.seed", "abc", "search.seed: 'abc' is not an integer (expected an integer"),
    ("reuse_actors", "yes", "reuse_actors: expected true or false, got 'yes'"),
    ("search.show", ["test/complex_TBP_planar_10/accel_err_maen"],
     "search.show: 'test/complex_TBP_planar_10/accel_err_maen' is never reported by the twobody family "
     "(did you mean 'test/complex_TBP_planar_10/accel_err_mean'?)"),
    ("search.show", {"a": 1}, "search.show: expected a list of metric names"),
    ("space.feature", {"choice": ["sph_4D_rinv_vel", "sph_4D_rinv_vel_harmonics"], "when": {"harmonic_order": 2}},
     "space.feature.when: conditions form a cycle: feature -> harmonic_order -> feature"),
]


@pytest.mark.parametrize("key,value,message", MALFORMED, ids=[f"{k}={v!r}"[:40] for k, v, _ in MALFORMED])
def test_malformed_specs_are_refused_with_the_specific_message(tmp_path: Path, key: str, value: Any,
                                                               message: str) -> None:
    path = _write(tmp_path, _mutate(key, value))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}:"), text
    assert message in text, text


@pytest.mark.parametrize("content,message", [("- a\n- b\n", "expected a mapping at the top level"),
                                             ("name: [unclosed\n", "not valid YAML")])
def test_unparseable_files(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec(_write(tmp_path, content))
    with pytest.raises(ConfigError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_a_single_value_override_always_wins(tmp_path: Path) -> None:
    """The users' old tool only honoured overrides that listed two or more values."""
    path = _write(tmp_path, GOOD)
    spec = load_spec(path, ["base.lr=0.005", "space.depth=3", "search.num_samples=1",
                            "space.activation=tanh", "space.test_datasets=[complex_TBP_planar_1_test]"])
    assert spec.base["lr"] == 0.005 and spec.num_samples == 1
    by_name = {p.name: p for p in spec.params}
    assert by_name["depth"].args == (3,) and by_name["depth"].kind == "fixed"
    assert by_name["activation"].args == ("tanh",)
    assert by_name["test_datasets"].args == (["complex_TBP_planar_1_test"],)  # a plain list is a fixed value


def test_resources_that_can_never_be_satisfied(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, _mutate("resources", {"cpu": 4, "gpu": 0.5})))
    with pytest.raises(ConfigError, match="resources.cpu: 4 CPUs per trial, but this machine has 2"):
        check_resources(spec, cpus=2, gpus=1)
    spec = load_spec(_write(tmp_path, _mutate("resources", {"cpu": 1, "gpu": 0.5})))
    with pytest.raises(ConfigError, match="resources.gpu: 0.5 GPU per trial, but this machine has 0"):
        check_resources(spec, cpus=2, gpus=0)
    check_resources(spec, cpus=2, gpus=1)
