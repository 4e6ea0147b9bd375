"""An MLflow server that goes away during a sweep, comes back, and goes away past its end.

The driver keeps training and says so in its progress lines; every step the tracker journaled
reaches MLflow in the end (the gap of the first outage when the server reachable again, the rest
on ``dynsweep resume``), none twice. Real ``mlflow server`` processes, a real local Ray.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from mlflowserver import MlflowServer  # tests/mlflowserver.py

DYNSWEEP = str(Path(sys.executable).parent / "dynsweep")


def _results(journal: Path) -> int:
    return journal.read_text().count('"e": "result"') if journal.exists() else 0


def _wait(condition, proc: subprocess.Popen, timeout_s: float) -> bool:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(0.3)
    return condition()


def test_mlflow_outage_mid_sweep_and_past_its_end_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    server = MlflowServer(tmp_path / "srv")
    url = server.start()
    spec = tmp_path / "outage.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "outage", "family": "dummy", "storage": str(tmp_path / "runs"),
        # trials run until the test creates stop_file: the sweep outlasts the reconnection however
        # slow the machine is, and ends when the test says so (a result every 0.3 s per trial: enough
        # to have gaps, few enough that replaying them stays quick)
        "base": {"steps": 100_000, "sleep_s": 0.3, "stop_file": str(tmp_path / "stop")},
        "space": {"x": {"uniform": [0.0, 2.0]}},
        "search": {"algorithm": "optuna", "seed": 0, "metric": "loss", "mode": "min", "num_samples": 4},
        "resources": {"cpu": 1}, "max_concurrent": 2}))
    folder = tmp_path / "runs" / "outage"
    journal = folder / "tracking_journal.jsonl"
    log = tmp_path / "driver.log"
    env = {**os.environ, "DYNSWEEP_MLFLOW_RETRY_S": "2"}
    try:
        with open(log, "w") as err:
            proc = subprocess.Popen([DYNSWEEP, "launch", str(spec), "--tracking-uri", url, "--progress-every", "1",
                                     "--num-cpus", "2"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            assert _wait(lambda: _results(journal) >= 6, proc, 180), log.read_text()[-3000:]
            server.stop()                                            # outage 1: while trials run
            _wait(lambda: "unreachable" in log.read_text(), proc, 60)
            time.sleep(3)
            server.start()                                           # back: the gap is written in-session
            reconnected = _wait(lambda: "reachable again" in log.read_text(), proc, 120)
            written = _results(journal)
            _wait(lambda: _results(journal) >= written + 4, proc, 60)   # results written while MLflow is back
            server.stop()                                            # outage 2: until after the sweep ends
            _wait(lambda: "unreachable" in log.read_text().split("reachable again", 1)[-1], proc, 120)
            (tmp_path / "stop").touch()                              # now the trials end
            out, _ = proc.communicate(timeout=400)
        stderr = log.read_text()
        assert proc.returncode == 0, stderr[-3000:]
        assert reconnected and "Traceback" not in stderr
        assert "4 trials: " in out and "could not be reached at the end of the sweep" in out
        lines = [ln for ln in stderr.splitlines() if "progress:" in ln]
        assert any("MLflow unreachable for" in ln for ln in lines)  # the driver says so while it trains
        assert all(re.search(r" \d/4 trials done", ln) for ln in lines) and "4/4 trials done" in lines[-1]
        meta = json.loads((folder / "sweep.json").read_text())
        assert meta["state"] == "finished" and meta["tracking_pending"] > 0

        server.start()
        done = subprocess.run([DYNSWEEP, "resume", str(folder), "--tracking-uri", url, "--quiet"],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("outage")
        runs = client.search_runs([exp.experiment_id])
        parent = [r for r in runs if r.data.tags.get("dynsweep.kind") == "sweep"]
        assert len(parent) == 1 and parent[0].info.status == "FINISHED"
        children = {r.data.tags["trial_id"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
        events = [json.loads(ln) for ln in journal.read_text().splitlines()]
        expected: dict[str, list[int]] = {}
        for e in events:
            if e["e"] == "result":
                expected.setdefault(e["trial"], []).append(e["step"])
        assert set(children) == set(expected) and len(children) == 4
        for trial, steps in expected.items():
            run = children[trial]
            assert run.info.status == "FINISHED"
            for key in ("step", "loss"):
                history = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                assert sorted(history) == sorted(set(steps)), (trial, key)   # every step, none twice
            artefacts = [a.path for a in client.list_artifacts(run.info.run_id)]
            assert "output.log" in artefacts and "loss_curve.png" in artefacts
        assert not (folder / "mlflow.db").exists()                    # the server holds everything
    finally:
        server.stop()
