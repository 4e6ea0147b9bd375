"""``dynsweep evaluate`` on the folders of ``dynsweep train``: the stored model tested again, its
own test metrics reproduced exactly, other data and settings added; bad targets refused in one
line. (A tracked trial: tests/test_rerun.py; every family's hook: the family contract.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from search.cli import main

TRAIN = ["--family", "twobody", "--set", "train_dataset=complex_TBP_planar_1_train",
         "--set", "test_datasets=[complex_TBP_planar_1_test]", "--set", "width=8", "--set", "steps=20",
         "--set", "report_every=10", "--set", "segment_length=10", "--set", "batch_size=16", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    mp = pytest.MonkeyPatch()
    mp.setenv("DYNSWEEP_DATASETS", str(root / "datasets"))
    assert main(["train", *TRAIN, "--run-dir", str(root / "run")]) == 0
    yield root / "run"
    mp.undo()


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _last(run: Path) -> dict[str, float]:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def test_a_train_folder_is_evaluated_again_exactly_and_on_more_data(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(trained.parent / "datasets"))
    capsys.readouterr()
    assert main(["evaluate", str(trained), "--datasets", "val", "--run-dir", str(tmp_path / "ev")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    last = _last(trained)
    own = [k for k in last if k.startswith("test/complex_TBP_planar_1/")]
    assert len(own) > 10 and all(_same(metrics[k], last[k]) for k in own), [k for k in own if not _same(metrics[k], last[k])]
    assert 0 < metrics["test/complex_TBP_planar_1_val/accel_err_mean"] < 1000
    assert "identical: all" in out and "new metric" in out
    assert (tmp_path / "ev" / "artifacts" / "per_point_errors.parquet").is_file()
    # the bare checkpoint folder works too (its family told by its config), default folder under the run
    assert main(["evaluate", str(trained / "checkpoint"), "--set", "solver=rk4"]) == 0
    (done,) = (trained / "evaluations").iterdir()
    changed = json.loads((done / "metrics.json").read_text())
    assert changed["test/complex_TBP_planar_1/accel_err_mean"] == last["test/complex_TBP_planar_1/accel_err_mean"]
    assert changed["test/complex_TBP_planar_1/rollout_pos_err_pct"] != last["test/complex_TBP_planar_1/rollout_pos_err_pct"]


@pytest.mark.parametrize("args, message", [
    (["--datasets", "no_such_set"], "no_such_set"),
    (["--set", "widht=3"], "did you mean 'width'"),
    (["--family", "timestepper"], "config: unknown key"),
])
def test_bad_requests_are_one_line_errors(trained: Path, args: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(trained.parent / "datasets"))
    capsys.readouterr()
    assert main(["evaluate", str(trained), *args, "--run-dir", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dynsweep: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_a_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no checkpoint.pt here" in capsys.readouterr().err
