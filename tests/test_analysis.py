"""Analysis commands over real sweeps (real Ray, real MLflow): every number checked against the
values the sweep itself returned, every plot opened as an image, the UI queried over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import ray
import yaml

from search.cli import main
from search.launch import launch
from search.spec import load_spec

TEST_SET = "complex_TBP_planar_1"


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four small real sweeps: two-body (2 x 2 grid), dummy failures (3 x 2 grid), dummy ASHA, two-body
    with 3 seed replicates per trial (2 trials)."""
    root = tmp_path_factory.mktemp("analysis")
    old = os.environ.get("DYNSWEEP_DATASETS")
    os.environ["DYNSWEEP_DATASETS"] = str(root / "datasets")
    temp = Path("/tmp") / f"dynsweep-test-ray-a-{tmp_path_factory.getbasetemp().name}"
    ray.init(num_cpus=2, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False)
    try:
        specs = {
            "tb": {"name": "tb", "family": "twobody", "storage": str(root / "runs"),
                   "base": {"steps": 20, "report_every": 10, "train_dataset": f"{TEST_SET}_train",
                            "val_dataset": None, "test_datasets": [f"{TEST_SET}_test"], "batch_size": 64},
                   "space": {"segment_length": {"grid": [4, 10]}, "head": {"grid": ["mlp_4D_signed", "mlp_4D_unit"]}},
                   "search": {"algorithm": "grid", "metric": "train_loss", "mode": "min"},
                   "resources": {"cpu": 1}, "max_concurrent": 2},
            "fails": {"name": "fails", "family": "dummy", "storage": str(root / "runs"),
                      "base": {"steps": 4, "fail_at": 3},
                      "space": {"fail": {"grid": ["none", "raise", "nan"]}, "choice": {"grid": ["a", "b"]}},
                      "search": {"algorithm": "grid", "metric": "loss", "mode": "min"},
                      "resources": {"cpu": 1}, "max_concurrent": 2, "reuse_actors": True},
            "asha": {"name": "asha", "family": "dummy", "storage": str(root / "runs"),
                     "base": {"steps": 8, "target": 0.0},
                     "space": {"x": {"uniform": [-1.0, 1.0]}, "extra": {"choice": [0.0, 5.0]},
                               "choice": {"choice": ["a", "b"]}},
                     "search": {"algorithm": "optuna", "seed": 1, "metric": "loss", "mode": "min", "num_samples": 16},
                     "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2, "max_t": 8,
                                   "time_attr": "step"},
                     "resources": {"cpu": 1}, "max_concurrent": 2, "reuse_actors": True},
            "reps": {"name": "reps", "family": "twobody", "storage": str(root / "runs"), "replicates": 3,
                     "base": {"steps": 6, "report_every": 3, "train_dataset": f"{TEST_SET}_train", "width": 16,
                              "test_datasets": [f"{TEST_SET}_test"], "batch_size": 16, "segment_length": 10,
                              "rollout": False},
                     "space": {"head": {"grid": ["mlp_4D_signed", "mlp_4D_unit"]}},
                     "search": {"algorithm": "grid", "metric": "val_accel_err", "mode": "min"},
                     "resources": {"cpu": 1}, "max_concurrent": 2},
        }
        out: dict[str, Any] = {"root": root}
        for key, raw in specs.items():
            path = root / f"{key}.yaml"
            path.write_text(yaml.safe_dump(raw))
            spec = load_spec(path)
            out[key] = {"spec": spec, "summary": launch(spec, quiet=True), "dir": spec.sweep_dir}
        yield out
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)
        if old is None:
            os.environ.pop("DYNSWEEP_DATASETS", None)
        else:
            os.environ["DYNSWEEP_DATASETS"] = old


def _json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(args + ["--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_analyze_table_matches_the_trials_results(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tb = sweeps["tb"]
    table = _json(capsys, ["analyze", str(tb["dir"])])
    rows = table["rows"]
    results, configs = tb["summary"]["results"], tb["summary"]["configs"]
    assert len(rows) == 4 and {r["trial"] for r in rows} == set(results)
    for row in rows:
        res = results[row["trial"]]
        assert row["head"] == configs[row["trial"]]["head"]
        assert int(row["segment_length"]) == configs[row["trial"]]["segment_length"]
        for column, metric in (("mean", "accel_err_mean"), ("theta_deg", "theta_deg"), ("radial_pct", "radial_pct"),
                               ("skewness", "accel_err_skew"), ("pearson_sk1", "accel_err_pearson_sk1"),
                               ("pearson_sk2", "accel_err_pearson_sk2"), ("bowley", "accel_err_bowley")):
            assert row[f"{TEST_SET}/{column}"] == pytest.approx(res[f"test/{TEST_SET}/{metric}"], rel=1e-9)
    losses = [r["train_loss"] for r in rows]
    assert losses == sorted(losses)                                       # sorted by the sweep metric, best first
    means = [r[f"{TEST_SET}/mean"] for r in rows]
    assert table["best"][f"{TEST_SET}/mean"] == pytest.approx(min(means))
    assert table["best"]["train_loss"] == pytest.approx(min(losses))
    capsys.readouterr()
    assert main(["analyze", str(tb["dir"]), "--format", "markdown", "--sort", f"{TEST_SET}/theta_deg",
                 "--out", str(sweeps["root"] / "tables")]) == 0
    text = capsys.readouterr().out
    assert text.count(" *") >= 3 and "| run | trial |" in text          # best values marked
    assert (sweeps["root"] / "tables" / "tb_generalisation.md").read_text() in text
    assert main(["analyze", str(tb["dir"]), "--sort", "nope"]) == 2
    assert "--sort: no column 'nope'" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as mp:  # from inside the sweep's folder, "." is the sweep
        mp.chdir(tb["dir"])
        assert {r["trial"] for r in _json(capsys, ["analyze", "."])["rows"]} == set(results)


def test_diff_shows_only_what_differs(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tb = sweeps["tb"]
    configs = tb["summary"]["configs"]
    a, b = sorted(configs)[:2]
    expected = {k for k in configs[a] if configs[a][k] != configs[b][k]}
    table = _json(capsys, ["diff", a, b, "--store", str(tb["dir"])])
    assert {r["key"] for r in table["rows"]} == expected
    three = _json(capsys, ["diff", *sorted(configs)[:3], "--store", str(tb["dir"])])
    assert {r["key"] for r in three["rows"]} == {"segment_length", "head"}
    variation = _json(capsys, ["diff", "--sweep", str(tb["dir"])])
    assert {(r["param"], r["values"]) for r in variation["rows"]} == {("segment_length", 2), ("head", 2)}
    assert all(r["runs per value"].count("(2)") == 2 for r in variation["rows"])


def test_failures_grouped_with_shared_parameters(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fails = sweeps["fails"]
    results, configs = fails["summary"]["results"], fails["summary"]["configs"]
    table = _json(capsys, ["failures", str(fails["dir"])])
    groups = {r["class"]: r for r in table["rows"]}
    assert set(groups) == {"error", "diverged"}
    for cls, fail in (("error", "raise"), ("diverged", "nan")):
        ids = [t for t, c in configs.items() if c["fail"] == fail]
        assert groups[cls]["runs"] == len(ids) == 2
        assert groups[cls]["shared parameters"] == f"fail={fail}"
        assert groups[cls]["trial_s"] == pytest.approx(sum(results[t]["time_total_s"] for t in ids), abs=0.01)
    assert groups["error"]["signature"] == "RuntimeError: dummy failure at step #"


def test_importance_and_marginals(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    asha = sweeps["asha"]
    results, configs = asha["summary"]["results"], asha["summary"]["configs"]
    capsys.readouterr()
    assert main(["importance", str(asha["dir"]), "--format", "json"]) == 0
    first, second = capsys.readouterr().out.split("\n{", 1)
    scores = {r["param"]: r["importance"] for r in json.loads(first)["rows"]}
    assert set(scores) == {"x", "extra", "choice"} and sum(scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert scores["extra"] > scores["choice"]                               # extra shifts the loss by 5; choice does nothing
    marginals = json.loads("{" + second)["rows"]
    for value in (0.0, 5.0):
        losses = [results[t]["loss"] for t, c in configs.items() if c["extra"] == value]
        row = next(r for r in marginals if r["param"] == "extra" and float(r["value"]) == value)
        assert row["runs"] == len(losses) and row["mean"] == pytest.approx(float(np.mean(losses)), rel=1e-9)


def test_cost_counts_what_asha_saved(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    asha = sweeps["asha"]
    summary = asha["summary"]
    results = summary["results"]
    table = _json(capsys, ["cost", str(asha["dir"])])
    by_state = {r["state"]: r for r in table["rows"]}
    assert by_state["stopped early"]["runs"] == summary["stopped_early"] > 0
    assert by_state["finished"]["runs"] == summary["finished"]
    spent = sum(r["time_total_s"] for r in results.values())
    assert sum(r["trial_s"] for r in table["rows"]) == pytest.approx(spent, abs=0.05)
    without = sum(r["time_total_s"] / r["step"] * 8 if r["step"] < 8 else r["time_total_s"] for r in results.values())
    capsys.readouterr()
    assert main(["cost", str(asha["dir"])]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("without early stopping"))
    assert float(line.split(": ")[1].split(" trial-s")[0]) == pytest.approx(without, abs=0.1)
    assert "full grid: not defined (continuous parameters)" in text


@pytest.mark.parametrize("kind", ["heatmap", "box", "curves", "errors", "loglog", "trajectory", "field", "parallel",
                                  "anomaly", "orbits"])
def test_plots_are_real_images_logged_to_the_sweep(sweeps: dict[str, Any], kind: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from matplotlib.image import imread
    from mlflow.tracking import MlflowClient

    from analysis.plots import ALL

    tb = sweeps["tb"]
    out = sweeps["root"] / "plots"
    extra = ["--x", "segment_length", "--y", "head"] if kind == "heatmap" else []
    assert main(["plot", str(tb["dir"]), kind, "--out", str(out), *extra]) == 0
    image = imread(out / f"{kind}.png")
    assert image.shape[:2] == (ALL[kind].size[1], ALL[kind].size[0])      # the declared size
    assert float(image[..., :3].std()) > 0.05                              # not blank
    keep = os.environ.get("DYNSWEEP_KEEP_PLOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{kind}.png").write_bytes((out / f"{kind}.png").read_bytes())
    client = MlflowClient(f"sqlite:///{tb['dir'] / 'mlflow.db'}")
    parent = json.loads((tb["dir"] / "mlflow_runs.json").read_text())["__sweep__"]
    assert f"plots/{kind}.png" in [a.path for a in client.list_artifacts(parent, "plots")]


def test_a_plot_of_chosen_runs_does_not_replace_the_sweeps_own(sweeps: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    tb = sweeps["tb"]
    out = sweeps["root"] / "chosen"
    trial = sorted(tb["summary"]["results"])[0]
    assert main(["plot", str(tb["dir"]), "orbits", "--out", str(out)]) == 0
    assert main(["plot", str(tb["dir"]), "orbits", "--runs", trial, "--out", str(out)]) == 0
    assert (out / "orbits.png").read_bytes() != (out / f"orbits_{trial}.png").read_bytes()
    client = MlflowClient(f"sqlite:///{tb['dir'] / 'mlflow.db'}")
    parent = json.loads((tb["dir"] / "mlflow_runs.json").read_text())["__sweep__"]
    logged = [a.path for a in client.list_artifacts(parent, "plots")]
    assert "plots/orbits.png" in logged and f"plots/orbits_{trial}.png" in logged


def test_ui_serves_the_sweep_over_http(sweeps: dict[str, Any]) -> None:
    tb = sweeps["tb"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dynsweep"), "ui", str(tb["dir"]), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = ""
        deadline = time.time() + 120
        while time.time() < deadline and "compare" not in line:
            line = proc.stdout.readline() if proc.stdout else ""
            assert proc.poll() is None or line, "dynsweep ui exited"
        assert f"http://127.0.0.1:{port}/#/compare-runs?" in line
        parent = json.loads((tb["dir"] / "mlflow_runs.json").read_text())["__sweep__"]
        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        run = json.load(urllib.request.urlopen(f"{base}/runs/get?run_id={parent}", timeout=10))["run"]
        body = json.dumps({"experiment_ids": [run["info"]["experiment_id"]], "max_results": 100}).encode()
        request = urllib.request.Request(f"{base}/runs/search", data=body, headers={"Content-Type": "application/json"})
        runs = json.load(urllib.request.urlopen(request, timeout=10))["runs"]
        children = [r for r in runs if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        assert len(children) == 4
        results = tb["summary"]["results"]
        for child in children:
            tags = {t["key"]: t["value"] for t in child["data"]["tags"]}
            params = {p["key"]: p["value"] for p in child["data"]["params"]}
            metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
            assert params["head"] in ("mlp_4D_signed", "mlp_4D_unit")
            assert metrics["train_loss"] == pytest.approx(results[tags["trial_id"]]["train_loss"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    with socket.socket() as sock:                                      # the server is gone with it
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_plots_that_do_not_apply_are_refused_in_one_line(sweeps: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The dummy family writes no artefacts: its sweep offers the generic kinds only, and says so."""
    capsys.readouterr()
    assert main(["plot", str(sweeps["asha"]["dir"]), "errors", "--out", str(sweeps["root"] / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'errors' does not apply to a dummy sweep" in err
    assert "curves, box, heatmap, parallel" in err
    assert not (sweeps["root"] / "none" / "errors.png").exists()


def test_generic_plots_work_for_a_family_without_artefacts(sweeps: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = sweeps["root"] / "dummy-plots"
    for kind in ("curves", "box", "parallel"):
        assert main(["plot", str(sweeps["asha"]["dir"]), kind, "--out", str(out)]) == 0, capsys.readouterr().err
        assert (out / f"{kind}.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["plot", str(sweeps["tb"]["dir"]), "box", "--x", "no_such_param", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "box needs a swept parameter to group by (--x); swept: " in err
    assert "segment_length" in err and "head" in err


def test_a_replicated_sweep_ranks_by_the_mean_and_shows_the_spread(sweeps: dict[str, Any],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Each trial trained 3 seeds as one model: the sweep metric is their mean, MLflow holds each
    replicate's value, analyze shows mean and std, the box plot every replicate."""
    from mlflow.tracking import MlflowClient

    reps = sweeps["reps"]
    results = reps["summary"]["results"]
    assert len(results) == 2
    for res in results.values():
        values = [res[f"val_accel_err_r{i}"] for i in range(3)]
        assert len(set(values)) == 3 and res["val_accel_err"] == pytest.approx(float(np.mean(values)), rel=1e-12)
        assert res["val_accel_err_std"] == pytest.approx(float(np.std(values)), rel=1e-9)
        assert res["replicates_live"] == 3.0
    table = _json(capsys, ["analyze", str(reps["dir"])])
    for row in table["rows"]:
        res = results[row["trial"]]
        assert row["val_accel_err"] == pytest.approx(res["val_accel_err"], rel=1e-9)
        assert row["val_accel_err ±std"] == pytest.approx(res["val_accel_err_std"], rel=1e-9)
        assert row[f"{TEST_SET}/mean ±std"] == pytest.approx(res[f"test/{TEST_SET}/accel_err_mean_std"], rel=1e-9)
    client = MlflowClient(f"sqlite:///{reps['dir'] / 'mlflow.db'}")
    runs = [r for r in client.search_runs([client.get_experiment_by_name("reps").experiment_id])
            if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2 and all(r.data.params["replicates"] == "3" for r in runs)
    assert all({f"val_accel_err_r{i}" for i in range(3)} <= set(r.data.metrics) for r in runs)
    out = sweeps["root"] / "reps-plots"
    assert main(["plot", str(reps["dir"]), "box", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (out / "box.png").stat().st_size > 10_000


def test_derived_parameters_are_not_counted_as_swept() -> None:
    import polars as pl

    from analysis.source import varying_params

    runs = pl.DataFrame({"params.segment_length": ["4", "10"], "params.segment_ratio": ["0.011", "0.028"],
                         "params.n_orbits": ["1", "1"], "params.head": ["a", "b"],
                         "tags.dynsweep.derived_params": ["n_orbits,segment_ratio", "n_orbits,segment_ratio"]})
    assert varying_params(runs) == ["params.segment_length", "params.head"]
    assert varying_params(runs.drop("tags.dynsweep.derived_params")) == [
        "params.segment_length", "params.segment_ratio", "params.head"]


def test_heatmap_facets_by_a_third_parameter(sweeps: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from matplotlib.image import imread

    from analysis.plots import ALL

    tb = sweeps["tb"]
    out = sweeps["root"] / "plots-facet"
    assert main(["plot", str(tb["dir"]), "heatmap", "--x", "segment_length", "--y", "n_orbits", "--facet", "head",
                 "--out", str(out)]) == 0
    image = imread(out / "heatmap.png")
    assert image.shape[:2] == (ALL["heatmap"].size[1], ALL["heatmap"].size[0]) and image[..., :3].std() > 0.05
    keep = os.environ.get("DYNSWEEP_KEEP_PLOTS")
    if keep:
        (Path(keep) / "heatmap-facet.png").write_bytes((out / "heatmap.png").read_bytes())
    capsys.readouterr()
    assert main(["plot", str(tb["dir"]), "heatmap", "--x", "segment_length", "--y", "head", "--facet", "colour",
                 "--out", str(out)]) == 2
    assert "no parameter 'colour' to facet by" in capsys.readouterr().err
