"""``dynsweep train`` and ``--set`` overrides (a single value always overrides a default)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from search.cli import main
from search.overrides import apply_overrides
from trainables.common.errors import ConfigError


def test_single_value_overrides_like_a_list_would() -> None:
    base = {"lr": 0.001, "phases": [{"steps": 5}, {"steps": 7}], "model": {"width": 64}}
    out = apply_overrides(base, ["lr=0.01", "model.width=32", "phases.1.steps=9", "test_datasets=[a_test]",
                                 "activation=tanh"])
    assert out == {"lr": 0.01, "phases": [{"steps": 5}, {"steps": 9}], "model": {"width": 32},
                   "test_datasets": ["a_test"], "activation": "tanh"}
    assert base["lr"] == 0.001  # the input is not modified


@pytest.mark.parametrize("bad,message", [("lr", "expected key=value"), ("phases.5.steps=1", "not an index"),
                                         ("lr.x=1", "lr is a value \\(0.1\\), not a mapping"), ("a=[1,", "not valid YAML")])
def test_bad_overrides_are_explained(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides({"lr": 0.1, "phases": [{}]}, [bad])


def test_train_runs_a_yaml_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "family": "twobody", "datasets_root": str(tmp_path / "ds"), "train_dataset": "complex_TBP_planar_1_train",
        "test_datasets": ["complex_TBP_planar_1_test"], "width": 8, "segment_length": 10, "steps": 100,
        "rollout": False}))
    run_dir = tmp_path / "run"
    assert main(["train", str(cfg), "--set", "steps=6", "--set", "report_every=3", "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "complex_TBP_planar_1" in out and "accel_err_mean" in out
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["steps"] == 6 and saved["width"] == 8          # the single-value override won
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run_dir / "checkpoint" / "checkpoint.pt").is_file()


def test_train_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--family", "twobody", "--set", "hed=rtn", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'hed' (did you mean 'head'?)" in err[0]
    assert main(["train", "--family", "nbody"]) == 2
    from trainables.registry import FAMILIES

    assert f"unknown family 'nbody'; known families: {', '.join(sorted(FAMILIES))}" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert not (tmp_path / "checkpoint").exists()
