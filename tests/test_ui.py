"""``dynsweep ui`` over a tiny real sweep, with real ``mlflow server`` processes: the printed URLs
open the sweep's shared view (experiment tag), ``--port 0`` picks a free port, and a port held by
another MLflow server is refused in one line (exit 2) without touching that server.

Every process here is started by the test, in its own session, and stopped by its group id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.ui import stop_group

from sweeprun import run_sweep  # tests/sweeprun.py

DYNSWEEP = str(Path(sys.executable).parent / "dynsweep")
MLFLOW = str(Path(sys.executable).parent / "mlflow")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A dummy sweep: 4 trials over a float and a choice, metric ``loss`` minimised."""
    root = tmp_path_factory.mktemp("ui")
    raw = {"name": "uisweep", "family": "dummy", "storage": str(root / "runs"),
           "base": {"steps": 3, "target": 0.0},
           "space": {"x": {"uniform": [-1.0, 1.0]}, "choice": {"choice": ["a", "b"]}},
           "search": {"algorithm": "optuna", "seed": 3, "metric": "loss", "mode": "min", "num_samples": 4},
           "resources": {"cpu": 1}, "max_concurrent": 2}
    spec, summary = run_sweep(root, raw, Path("/tmp") / f"dynsweep-test-ray-ui-{tmp_path_factory.getbasetemp().name}")
    parent = json.loads((spec.sweep_dir / "mlflow_runs.json").read_text())["__sweep__"]
    yield {"dir": spec.sweep_dir, "summary": summary, "parent": parent, "root": root}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _lines_until(proc: subprocess.Popen[str], marker: str, timeout: float = 180) -> list[str]:
    lines: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line and proc.poll() is not None:
            raise AssertionError(f"dynsweep ui exited {proc.returncode}: {lines} {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} within {timeout} s: {lines}")


def _url(line: str) -> urllib.parse.SplitResult:
    return urllib.parse.urlsplit(line.split()[-1])


def _query(url: urllib.parse.SplitResult) -> dict[str, str]:
    """The query of a hash route: ``#/experiments/1/runs?a=b``."""
    return dict(urllib.parse.parse_qsl(url.fragment.split("?", 1)[1]))


def test_urls_open_the_sweeps_shared_view_on_a_free_port(sweep: dict[str, Any]) -> None:
    proc = subprocess.Popen([DYNSWEEP, "ui", str(sweep["dir"]), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = _lines_until(proc, "compareRunsMode=CHART")
        runs_line = next(x for x in lines if "viewStateShareKey" in x)
        runs = _url(runs_line)
        port = runs.port
        assert runs.hostname == "127.0.0.1" and port and port != 5000
        query = _query(runs)
        assert query == {"viewStateShareKey": "dynsweep", "workflowType": "machine_learning"}
        assert runs.fragment.startswith("/experiments/") and runs.fragment.split("?")[0].endswith("/runs")
        # no search key in the URL: MLflow ignores a shared view when the URL holds one
        assert "orderByKey" not in query
        charts = _query(_url(next(x for x in lines if "compareRunsMode" in x)))
        assert charts["compareRunsMode"] == "CHART" and charts["viewStateShareKey"] == "dynsweep"
        compare = next(x for x in lines if "/#/compare-runs?" in x)
        best = json.loads(_query(_url(compare))["runs"])
        assert len(best) == 4

        base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
        run = json.load(urllib.request.urlopen(f"{base}/runs/get?run_id={sweep['parent']}", timeout=10))["run"]
        exp_id = run["info"]["experiment_id"]
        assert f"/experiments/{exp_id}/runs" in runs.fragment
        experiment = json.load(urllib.request.urlopen(f"{base}/experiments/get?experiment_id={exp_id}",
                                                      timeout=10))["experiment"]
        tags = {t["key"]: t["value"] for t in experiment["tags"]}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        state = json.loads(tags["mlflow.sharedViewState.dynsweep"])
        assert state["orderByKey"] == "metrics.`loss`" and state["orderByAsc"] is True
        assert state["searchFilter"] == f"tags.`mlflow.parentRunId` = '{sweep['parent']}'"
        assert state["selectedColumns"][0] == "metrics.`loss`"
        assert sorted(state["selectedColumns"][1:-1]) == ["params.`choice`", "params.`x`"]
        assert state["selectedColumns"][-1] == "attributes.`Dataset`"
        parallel = state["compareRunCharts"][0]
        assert parallel["type"] == "PARALLEL" and parallel["selectedMetrics"] == ["loss"]
        assert sorted(parallel["selectedParams"]) == ["choice", "x"]
        assert {c["metricSectionId"] for c in state["compareRunCharts"]} <= {s["uuid"] for s in state["compareRunSections"]}
        assert (sweep["dir"] / "mlflow_ui.log").is_file()
    finally:
        stop_group(proc)
    assert proc.returncode in (0, -signal.SIGTERM)
    with socket.socket() as sock:                                      # the server is gone with it
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_port_held_by_another_mlflow_server_is_refused(sweep: dict[str, Any]) -> None:
    port = _free_port()
    other_store = sweep["root"] / "other"
    other_store.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(other_store / "server.log", "wb") as log:
        other = subprocess.Popen([MLFLOW, "server", "--backend-store-uri", f"sqlite:///{other_store / 'mlflow.db'}",
                                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=other_store, start_new_session=True)
    try:
        deadline = time.time() + 180
        while True:
            assert other.poll() is None, (other_store / "server.log").read_text()
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).status == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline, "the other MLflow server did not start"
            time.sleep(0.5)
        start = time.time()
        done = subprocess.run([DYNSWEEP, "ui", str(sweep["dir"]), "--port", str(port)], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 2, done
        assert done.stdout == ""
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"port {port}" in lines[0] and "--port 0" in lines[0], done.stderr
        assert time.time() - start < 60
        assert other.poll() is None
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200
    finally:
        stop_group(other)


def test_the_view_shows_the_familys_result_columns_and_charts_no_bookkeeping() -> None:
    """The columns ``dynsweep analyze`` shows for a family (its declared results) are visible in the
    runs table after the swept parameters and charted right after the sweep metric; counters such
    as ``epoch`` or ``best_step`` get no chart."""
    from types import SimpleNamespace

    from analysis.ui import view_state

    sweep = SimpleNamespace(experiment_id="7", parent_id="p0")
    metrics = ["val_extrap_mse", "epoch", "lr", "best_step", "test/extrap_mse", "test/energy_error", "kl"]
    state = view_state(sweep, "val_extrap_mse", "min", ["model"], metrics,  # type: ignore[arg-type]
                       ["test/extrap_mse", "test/energy_error"])
    assert state["selectedColumns"] == ["metrics.`val_extrap_mse`", "params.`model`", "metrics.`test/extrap_mse`",
                                        "metrics.`test/energy_error`", "attributes.`Dataset`"]
    charted = [c.get("metricKey") for c in state["compareRunCharts"][1:] if not c["deleted"]]
    assert charted == ["val_extrap_mse", "test/extrap_mse", "test/energy_error", "lr", "kl"]
    deleted = {c["metricKey"] for c in state["compareRunCharts"] if c["deleted"]}
    assert deleted == {"epoch", "best_step"}          # present as deleted cards: MLflow adds no new ones
    bars = {c["metricKey"] for c in state["compareRunCharts"][1:] if not c["isGenerated"]}
    assert bars == {"test/extrap_mse", "test/energy_error"}  # final values stay bars, histories become lines
