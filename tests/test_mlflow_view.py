"""What a person sees of a sweep in MLflow, checked through MLflow's REST API on a real
``mlflow server`` process: model-training experiment, run names, outcomes and statuses, the
best-run tag, only the family's metrics."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml

from search.launch import launch
from search.spec import load_spec
from search.tracking import default_tracking_uri


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An ASHA sweep (completed, stopped-early and failed trials) and a sweep whose max_t exceeds
    its trials' length; then one MLflow server on the ASHA sweep's store."""
    root = tmp_path_factory.mktemp("view")
    temp = Path("/tmp") / f"dynsweep-test-ray-v-{tmp_path_factory.getbasetemp().name}"
    ray.init(num_cpus=2, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False)
    extras = os.environ.get("DYNSWEEP_SWEEP_EXTRAS")
    os.environ["DYNSWEEP_SWEEP_EXTRAS"] = "1"                      # this module checks the plots and the study
    out: dict[str, Any] = {"root": root}
    try:
        specs = {
            "asha": {"base": {"steps": 8, "target": 0.0, "fail_at": 3},
                     "space": {"x": {"grid": [0.1, 0.2, 2.0, 3.0, 4.0, 5.0]}, "fail": {"grid": ["none", "raise"]},
                               "choice": {"grid": ["a"]}},
                     "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 8,
                                   "time_attr": "step"}},
            "regr": {"family": "regression", "base": {"steps": 6, "report_every": 3, "widths": "8x8"},
                     "space": {"loss": {"grid": ["mse", "huber"]}}, "search": {"algorithm": "grid",
                                                                               "metric": "val_loss", "mode": "min"}},
            "long_max_t": {"base": {"steps": 4}, "space": {"x": {"grid": [0.0, 1.0, 2.0]}},
                           "scheduler": {"type": "asha", "grace_period": 5, "reduction_factor": 2, "max_t": 40,
                                         "time_attr": "step"}},
        }
        for name, extra in specs.items():
            raw = {"name": name, "family": "dummy", "storage": str(root / "runs"), "resources": {"cpu": 1},
                   "max_concurrent": 2, "reuse_actors": True, "search": {"algorithm": "grid", "metric": "loss", "mode": "min"}, **extra}
            raw["base"] = {**raw["base"], "datasets_root": str(root / "datasets")} if name == "regr" else raw["base"]
            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump(raw))
            spec = load_spec(path)
            out[name] = {"spec": spec, "summary": launch(spec, quiet=True)}
    finally:
        if extras is None:
            os.environ.pop("DYNSWEEP_SWEEP_EXTRAS", None)
        else:
            os.environ["DYNSWEEP_SWEEP_EXTRAS"] = extras
        ray.shutdown()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = default_tracking_uri(out["asha"]["spec"].sweep_dir)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", uri,
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=root)   # the server's own artefact folder (./mlartifacts) goes there
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        out["api"] = f"{base}/api/2.0/mlflow"
        yield out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _get(api: str, path: str) -> dict[str, Any]:
    return json.load(urllib.request.urlopen(f"{api}/{path}", timeout=10))


def _post(api: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{api}/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))


def _runs(api: str, experiment: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    exp = _get(api, f"experiments/get-by-name?experiment_name={experiment}")["experiment"]
    runs = _post(api, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    for r in runs:
        r["tags"] = {t["key"]: t["value"] for t in r["data"].get("tags", [])}
        r["params"] = {p["key"]: p["value"] for p in r["data"].get("params", [])}
        r["metrics"] = {m["key"]: m["value"] for m in r["data"].get("metrics", [])}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r["tags"])
    return exp, [r for r in runs if r is not parent], parent


def test_experiment_is_model_training_and_runs_are_named_by_what_differs(sweeps: dict[str, Any]) -> None:
    exp, children, _ = _runs(sweeps["api"], "asha")
    assert {t["key"]: t["value"] for t in exp["tags"]}["mlflow.experimentKind"] == "custom_model_development"
    names = [r["info"]["run_name"] for r in children]
    assert len(set(names)) == len(names) == 12
    for r in children:
        name = r["info"]["run_name"]
        assert name.startswith(r["tags"]["trial_id"] + " ") and len(name) <= 120
        assert f"x={float(r['params']['x']):.3g}" in name and f"fail={r['params']['fail']}" in name
        assert "choice=" not in name                               # one value does not tell runs apart


def test_outcomes_statuses_and_failed_runs_never_ranked(sweeps: dict[str, Any]) -> None:
    _, children, _ = _runs(sweeps["api"], "asha")
    summary = sweeps["asha"]["summary"]
    by_outcome: dict[str, list[dict[str, Any]]] = {}
    for r in children:
        by_outcome.setdefault(r["tags"]["dynsweep.outcome"], []).append(r)
    assert set(by_outcome) == {"completed", "stopped_early", "failed"}
    assert len(by_outcome["failed"]) == summary["errored"] >= 1      # the others were stopped before failing
    assert len(by_outcome["stopped_early"]) == summary["stopped_early"] > 0
    assert len(by_outcome["completed"]) == summary["finished"] > 0
    assert {r["info"]["status"] for r in by_outcome["completed"] + by_outcome["stopped_early"]} == {"FINISHED"}
    for r in by_outcome["stopped_early"]:
        assert r["metrics"]["step"] < 8 and "failure_class" not in r["tags"]
    for r in by_outcome["failed"]:
        assert r["info"]["status"] == "FAILED" and r["tags"]["failure_class"] == "error"
        assert math.isnan(float(r["metrics"]["loss"])) and r["metrics"]["loss_before_failure"] > 0
    exp_id = children[0]["info"]["experiment_id"]
    ordered = _post(sweeps["api"], "runs/search", {"experiment_ids": [exp_id], "max_results": 3,
                                                   "filter": "tags.dynsweep.outcome != 'failed'",
                                                   "order_by": ["metrics.loss ASC"]})["runs"]
    assert all(t["value"] != "failed" for r in ordered for t in r["data"]["tags"] if t["key"] == "dynsweep.outcome")


def test_only_the_familys_metrics_are_logged(sweeps: dict[str, Any]) -> None:
    _, children, parent = _runs(sweeps["api"], "asha")
    for r in children:
        keys = set(r["metrics"])
        assert not keys & {"training_iteration", "time_total_s", "time_this_iter_s", "timestamp", "pid",
                           "time_since_restore", "iterations_since_restore", "done"}
        assert "target" not in keys                                 # a param, not also a constant metric
        assert {"loss", "step"} <= keys


def test_parent_names_its_best_run(sweeps: dict[str, Any]) -> None:
    _, children, parent = _runs(sweeps["api"], "asha")
    ranked = [r for r in children if r["tags"]["dynsweep.outcome"] in ("completed", "stopped_early")]
    best = min(ranked, key=lambda r: r["metrics"]["loss"])
    assert parent["tags"]["dynsweep.best_run_id"] == best["info"]["run_id"]
    assert parent["tags"]["dynsweep.best_trial"] == best["tags"]["trial_id"]
    note = parent["tags"]["mlflow.note.content"]
    assert f"/runs/{best['info']['run_id']}?workflowType=machine_learning)" in note and best["info"]["run_name"] in note
    artifacts = _get(sweeps["api"], f"artifacts/list?run_id={parent['info']['run_id']}")
    assert "summary.csv" in [f["path"] for f in artifacts.get("files", [])]
    plots = _get(sweeps["api"], f"artifacts/list?run_id={parent['info']['run_id']}&path=plots")
    assert {"plots/curves.png", "plots/parallel.png"} <= {f["path"] for f in plots.get("files", [])}


def test_trials_that_ran_to_the_end_are_completed_whatever_max_t(sweeps: dict[str, Any]) -> None:
    """max_t (40) beyond the trials' length (4 steps), first rung (5) after it: nothing was stopped early,
    and cost does not claim early stopping saved anything."""
    from mlflow.tracking import MlflowClient

    summary = sweeps["long_max_t"]["summary"]
    assert (summary["finished"], summary["stopped_early"]) == (3, 0)
    client = MlflowClient(default_tracking_uri(sweeps["long_max_t"]["spec"].sweep_dir))
    runs = client.search_runs([client.get_experiment_by_name("long_max_t").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {(r.info.status, r.data.tags["dynsweep.outcome"]) for r in children} == {("FINISHED", "completed")}
    from analysis.cost import cost
    from analysis.source import open_sweep

    sweep = open_sweep(str(sweeps["long_max_t"]["spec"].sweep_dir))
    table, totals = cost(sweep.runs(), sweep.spec())
    assert table["state"].to_list() == ["finished"] and totals["saved_s"] == 0.0


def _client(sweeps: dict[str, Any], name: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(default_tracking_uri(sweeps[name]["spec"].sweep_dir))


def test_a_child_run_holds_its_full_config_and_the_parent_its_spec(sweeps: dict[str, Any], tmp_path: Path) -> None:
    from search.trainable import resolve_config
    from search.tracking import flatten

    spec = sweeps["regr"]["spec"]
    client = _client(sweeps, "regr")
    runs = client.search_runs([client.get_experiment_by_name("regr").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert len(children) == 2
    for run in children:
        full = resolve_config("regression", spec.base, {"loss": run.data.params["loss"]})
        assert len(full) > 25 and run.data.params == flatten(full)          # defaults + base + sampled
        local = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / run.info.run_id))
        assert yaml.safe_load(Path(local).read_text()) == full
    names = [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert "spec.yaml" in names


def test_provenance_tags_and_dataset_inputs(sweeps: dict[str, Any]) -> None:
    from search.provenance import source_commit

    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    client = _client(sweeps, "regr")
    runs = client.search_runs([client.get_experiment_by_name("regr").experiment_id])
    assert head and source_commit() == head
    for run in runs:
        tags = run.data.tags
        assert tags["mlflow.source.git.commit"] == head and tags["mlflow.user"] and tags["mlflow.source.name"]
        for package in ("dynsweep", "python", "ray", "torch", "optuna", "mlflow"):
            assert tags[f"dynsweep.version.{package}"] not in ("", "not installed")
    for run in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        assert run.data.tags["device"] == "cpu" and int(run.data.tags["torch_threads"]) == 1
        inputs = run.inputs.dataset_inputs
        assert len(inputs) == 1
        digest = run.data.tags["dataset_sha256"]
        assert inputs[0].dataset.digest == digest[:36] and digest in inputs[0].dataset.source


def test_the_commit_is_dynsweeps_never_an_unrelated_repositorys(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """From inside another git repository, and for a copy of the package inside one (a virtual
    environment in a user's project): dynsweep's own commit, or unknown -- never theirs."""
    from search.provenance import run_tags, source_commit

    other = tmp_path / "project"
    (other / "venv" / "site-packages" / "search").mkdir(parents=True)
    (other / "venv" / "site-packages" / "search" / "provenance.py").write_text("# a copy\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@x", "GIT_COMMITTER_NAME": "u",
           "GIT_COMMITTER_EMAIL": "u@x"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "theirs"]):
        subprocess.run(["git", "-C", str(other), *args], check=True, env=env, capture_output=True)
    theirs = subprocess.run(["git", "-C", str(other), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert source_commit(other / "venv" / "site-packages") == "unknown"
    monkeypatch.chdir(other)
    commit = run_tags("test")["mlflow.source.git.commit"]
    assert commit != theirs.strip() and commit == source_commit()


def test_the_sweep_is_kept_as_an_optuna_study_for_optuna_dashboard(sweeps: dict[str, Any]) -> None:
    import optuna

    summary, folder = sweeps["asha"]["summary"], sweeps["asha"]["spec"].sweep_dir
    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{folder / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert len(states) == summary["trials"] == 12
    assert states.count(optuna.trial.TrialState.COMPLETE) == summary["finished"]
    assert states.count(optuna.trial.TrialState.PRUNED) == summary["stopped_early"]
    assert states.count(optuna.trial.TrialState.FAIL) == summary["errored"]
    assert study.best_value == pytest.approx(summary["best"])
    assert {"x", "fail"} <= set(study.best_trial.params) and study.best_trial.user_attrs["mlflow_run_id"]


def test_one_rule_for_the_store_server_sweeps_by_name_and_no_two_sweeps_mixed(
        sweeps: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep tracked on a real ``mlflow server`` is analysed by name with no flags (its folder
    records the server); launching a second sweep of that name into the same store, here through
    $MLFLOW_TRACKING_URI, is refused before Ray starts; ``diff`` finds runs under ./runs by itself."""
    from search.cli import main

    server = sweeps["api"].removesuffix("/api/2.0/mlflow")
    raw = {"name": "srv", "family": "dummy", "storage": "runs", "base": {"steps": 2},
           "space": {"x": {"grid": [0.0, 1.0]}}, "search": {"algorithm": "grid", "metric": "loss"},
           "resources": {"cpu": 1}}
    monkeypatch.chdir(tmp_path)
    Path("srv.yaml").write_text(yaml.safe_dump(raw))
    launch(load_spec(Path("srv.yaml")), tracking_uri=server, num_cpus=2, quiet=True)
    assert not (tmp_path / "runs" / "srv" / "mlflow.db").exists()          # tracked on the server only
    capsys.readouterr()
    assert main(["analyze", "srv", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["rows"]) == 2
    Path("again.yaml").write_text(yaml.safe_dump({**raw, "storage": "elsewhere"}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    assert main(["launch", "again.yaml", "--num-cpus", "2"]) == 2
    err = capsys.readouterr().err
    assert "already holds a sweep named 'srv'" in err and err.count("\n") == 1
    assert not (tmp_path / "elsewhere" / "srv" / "ray").exists()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(sweeps["root"])
    configs = sweeps["asha"]["summary"]["configs"]
    a, b = sorted(configs)[:2]
    assert main(["diff", a, b, "--format", "json"]) == 0
    differing = {r["key"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert differing == {k for k in configs[a] if configs[a][k] != configs[b][k]} != set()
