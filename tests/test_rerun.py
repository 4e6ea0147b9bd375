"""``dynsweep rerun`` over a real sweep (real Ray, real SQLite MLflow): a tracked trial trained
again reproduces its final metrics exactly, ``--set`` changes it, and a changed dataset is refused."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from search.cli import main

from sweeprun import run_sweep  # tests/sweeprun.py

TEST_SET = "complex_TBP_planar_1"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A two-body sweep of two trials, in seconds."""
    root = tmp_path_factory.mktemp("rerun")
    old = os.environ.get("DYNSWEEP_DATASETS")
    os.environ["DYNSWEEP_DATASETS"] = str(root / "datasets")
    raw = {"name": "tb", "family": "twobody", "storage": str(root / "runs"),
           "base": {"steps": 20, "report_every": 10, "train_dataset": f"{TEST_SET}_train",
                    "test_datasets": [f"{TEST_SET}_test"], "batch_size": 64},
           "space": {"head": {"grid": ["mlp_4D_signed", "mlp_4D_unit"]}},
           "search": {"algorithm": "grid", "metric": "train_loss", "mode": "min"},
           "resources": {"cpu": 1}, "max_concurrent": 2}
    spec, summary = run_sweep(root, raw, Path("/tmp") / f"dynsweep-test-ray-r-{tmp_path_factory.getbasetemp().name}")
    try:
        yield {"root": root, "dir": spec.sweep_dir, "summary": summary}
    finally:
        if old is None:
            os.environ.pop("DYNSWEEP_DATASETS", None)
        else:
            os.environ["DYNSWEEP_DATASETS"] = old


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _client(sweep: dict[str, Any]) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{sweep['dir'] / 'mlflow.db'}")


def _child(sweep: dict[str, Any]) -> Any:
    client = _client(sweep)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              "tags.trial_id != ''", order_by=["attributes.run_name ASC"])
    assert len(runs) == 2
    return runs[0]


def _rerun(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["rerun", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _new_run(sweep: dict[str, Any], out: str) -> Any:
    line = next(line for line in out.splitlines() if line.startswith("new run "))
    return _client(sweep).get_run(line.split()[2])


def test_rerun_reproduces_the_trial_exactly(sweep: dict[str, Any], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    original = _child(sweep)
    code, out, err = _rerun(capsys, [original.info.run_id[:10], "--store", str(sweep["dir"]),
                                     "--run-dir", str(tmp_path / "again")])
    assert code == 0, err
    new = _new_run(sweep, out)
    assert new.info.run_id != original.info.run_id
    assert new.info.experiment_id == original.info.experiment_id and new.info.status == "FINISHED"
    assert new.info.run_name == f"rerun of {original.info.run_name}"
    assert new.data.tags["dynsweep.rerun_of"] == original.info.run_id
    assert new.data.tags["dynsweep.family"] == "twobody"
    assert new.data.tags["torch_threads"] == original.data.tags["torch_threads"]
    assert "mlflow.source.git.commit" in new.data.tags and "dynsweep.version.torch" in new.data.tags
    assert "mlflow.parentRunId" not in new.data.tags  # not a trial of the sweep: analysis leaves it out
    before, after = original.data.metrics, new.data.metrics
    compared = ["val_loss", "train_loss", *[k for k in before if k.startswith("test/")]]
    assert len(compared) > 5
    for key in compared:
        assert after[key] == before[key], key
    assert "identical" in out.splitlines()[-1] and "not identical" not in out
    assert new.data.params == original.data.params
    artifacts = {a.path for a in _client(sweep).list_artifacts(new.info.run_id)}
    assert {"config.yaml", "checkpoint"} <= artifacts
    inputs = {d.dataset.name: d.dataset.digest for d in new.inputs.dataset_inputs}
    assert inputs == {d.dataset.name: d.dataset.digest for d in original.inputs.dataset_inputs}
    # the trial id finds the same run
    code, out, err = _rerun(capsys, [original.data.tags["trial_id"], "--store", str(sweep["dir"]),
                                     "--run-dir", str(tmp_path / "by-trial")])
    assert code == 0, err
    assert _new_run(sweep, out).data.tags["dynsweep.rerun_of"] == original.info.run_id


def test_rerun_with_set_trains_longer_as_a_new_run(sweep: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    original = _child(sweep)
    code, out, err = _rerun(capsys, [original.info.run_id, "--set", "steps=30", "--store", str(sweep["dir"]),
                                     "--run-dir", str(tmp_path / "longer")])
    assert code == 0, err
    new = _new_run(sweep, out)
    assert new.info.run_id != original.info.run_id
    assert new.data.tags["dynsweep.rerun_of"] == original.info.run_id
    assert new.data.tags["dynsweep.rerun_overrides"] == "steps=30"
    assert new.data.params["steps"] == "30" and original.data.params["steps"] == "20"
    assert new.data.metrics["step"] == 30 and original.data.metrics["step"] == 20
    steps = sorted(m.step for m in _client(sweep).get_metric_history(new.info.run_id, "step"))
    assert steps[-1] == 30
    assert "not identical" in out


def test_rerun_refuses_unknown_and_ambiguous_runs_and_bad_overrides(sweep: dict[str, Any], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", str(sweep["dir"]), "--run-dir", str(tmp_path / "never")]
    code, _, err = _rerun(capsys, ["0123456789abcdef", *store])
    assert code == 2 and "no run or trial with that id" in err and len(err.strip().splitlines()) == 1
    # a second run with the same trial id, in a copy of the store reached by --tracking-uri
    from mlflow.tracking import MlflowClient

    shutil.copy(sweep["dir"] / "mlflow.db", tmp_path / "copy.db")
    copy = MlflowClient(f"sqlite:///{tmp_path / 'copy.db'}")
    trial = _child(sweep)
    copy.create_run(trial.info.experiment_id, run_name="clash", tags={"trial_id": trial.data.tags["trial_id"],
                                                                      "dynsweep.family": "twobody"})
    code, _, err = _rerun(capsys, [trial.data.tags["trial_id"], "--tracking-uri", f"sqlite:///{tmp_path / 'copy.db'}",
                                   "--run-dir", str(tmp_path / "never")])
    assert code == 2 and "2 runs match" in err and len(err.strip().splitlines()) == 1
    code, _, err = _rerun(capsys, [_child(sweep).info.run_id, "--set", "widht=3", *store])
    assert code == 2 and "widht" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_rerun_refuses_a_changed_dataset(sweep: dict[str, Any], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from trainables.twobody.dataset import TwoBodyDataset, spec_from_name, write_dataset

    original = _child(sweep)
    name = f"{TEST_SET}_test"
    root = Path(os.environ["DYNSWEEP_DATASETS"])
    saved = tmp_path / "saved"
    shutil.copytree(root / name, saved)
    try:
        write_dataset(dataclasses.replace(spec_from_name(name), seed=12345), root, overwrite=True)
        code, _, err = _rerun(capsys, [original.info.run_id, "--store", str(sweep["dir"]),
                                         "--run-dir", str(tmp_path / "never")])
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 or lines[0].startswith("dynsweep: warning")  # a commit made meanwhile warns
        assert name in lines[-1] and "changed" in lines[-1]
        then = {d.dataset.name: d.dataset.digest for d in original.inputs.dataset_inputs}[name]
        assert then in lines[-1]                                  # the recorded hash, and the one on disk now
        assert TwoBodyDataset(root / name).content_hash in lines[-1]
        assert not (tmp_path / "never").exists()
    finally:
        shutil.rmtree(root / name)
        shutil.copytree(saved, root / name)


# --- dynsweep evaluate on a tracked trial ----------------------------------------------------------
def test_evaluate_reproduces_the_trials_test_metrics_and_is_tracked_under_it(
        sweep: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = _child(sweep)
    capsys.readouterr()
    code = main(["evaluate", original.info.run_id[:10], "--sweep", str(sweep["dir"]), "--datasets", "train",
                 "--run-dir", str(tmp_path / "ev")])
    out, err = capsys.readouterr()
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("evaluation run "))
    client = _client(sweep)
    ev = client.get_run(line.split()[2])
    tags = ev.data.tags
    assert tags["mlflow.parentRunId"] == original.info.run_id == tags["dynsweep.evaluates"]
    assert tags["dynsweep.kind"] == "evaluation" and tags["dynsweep.evaluate_datasets"] == "train"
    tests = {k: v for k, v in original.data.metrics.items() if k.startswith(f"test/{TEST_SET}/")}
    assert len(tests) > 10
    for key, value in tests.items():  # the same stored model, the same data, the same numbers
        assert ev.data.metrics[key] == value, key
    train_err = ev.data.metrics[f"test/{TEST_SET}_train/accel_err_mean"]
    assert 0 < train_err < 1000 and train_err != tests[f"test/{TEST_SET}/accel_err_mean"]
    assert "identical: all" in out and f"test/{TEST_SET}_train/accel_err_mean" in out
    logged = {a.path for a in client.list_artifacts(ev.info.run_id, "artifacts")}
    assert "artifacts/per_point_errors.parquet" in logged
    assert (tmp_path / "ev" / "metrics.json").is_file()
    _child(sweep)  # still exactly the sweep's two trials: an evaluation is not a trial


def test_evaluate_refuses_what_it_cannot_do_before_any_work(
        sweep: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    original = _child(sweep)
    capsys.readouterr()
    code = main(["evaluate", original.info.run_id, "--sweep", str(sweep["dir"]), "--set", "solver=rk5",
                 "--run-dir", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "config.solver: 'rk5' is not allowed" in err and "rk4" in err
    assert not (tmp_path / "bad").exists()
    code = main(["evaluate", "0123456789abcdef0123456789abcdef", "--sweep", str(sweep["dir"])])
    assert code == 2 and "no run or trial with that id" in capsys.readouterr().err


def test_derived_parameters_are_logged_and_plotted(sweep: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    params = _child(sweep).data.params
    assert "segment_ratio" in params, sorted(params)
    assert params["n_orbits"] == "1" and float(params["segment_ratio"]) == pytest.approx(18 / 360)
    assert _child(sweep).data.tags["dynsweep.derived_params"] == "n_orbits,segment_ratio"
    capsys.readouterr()
    code = main(["plot", str(sweep["dir"]), "heatmap", "--x", "n_orbits", "--y", "head", "--metric",
                 "test/complex_TBP_planar_1/accel_err_mean", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert list(tmp_path.glob("*.png"))
