"""The sweep engine on a real local Ray and a real MLflow (SQLite) store, with the dummy family."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient

from search.cli import main
from search.launch import launch
from search.spec import load_spec
from search.tracking import default_tracking_uri


@pytest.fixture(scope="module", autouse=True)
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Ray for the module, in its own temp folder: 2 CPUs and 1 logical GPU."""
    temp = Path("/tmp") / f"dynsweep-test-ray-{tmp_path_factory.getbasetemp().name}"
    ray.init(num_cpus=2, num_gpus=1, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    import shutil

    shutil.rmtree(temp, ignore_errors=True)


def _spec(tmp_path: Path, **data: Any):  # -> SweepSpec
    raw = {"name": "s", "family": "dummy", "storage": str(tmp_path / "runs"), "reuse_actors": True,
           "search": {"algorithm": "grid", "metric": "loss", "mode": "min", "num_samples": 1}, **data}
    path = tmp_path / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def _child_runs(spec: Any) -> list[Any]:
    client = MlflowClient(default_tracking_uri(spec.sweep_dir))
    exp = client.get_experiment_by_name(spec.name)
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.parametrize("reuse", [False, True])
def test_failing_trials_are_isolated_and_classified(tmp_path: Path, reuse: bool) -> None:
    spec = _spec(tmp_path, name="failing", base={"steps": 4, "fail_at": 2},
                 space={"fail": {"grid": ["raise", "nan", "exit", "none", "raise", "none", "none", "none", "kill"]}},
                 resources={"cpu": 0.5}, max_concurrent=4, reuse_actors=reuse)
    import tempfile

    tmp = Path(tempfile.gettempdir())                             # this test worker's own (tests/conftest.py)
    before = set(tmp.glob("dynsweep-*"))
    summary = launch(spec, quiet=True)   # 1 in 4 raise, 1 in 8 NaN, 1 in 8 os._exit (+ one SIGKILL)
    assert set(tmp.glob("dynsweep-*")) == before              # crashed trials leave no temp files behind
    assert (summary["trials"], summary["finished"], summary["errored"]) == (9, 4, 5)
    assert summary["failures"] == {"error": 2, "diverged": 1, "crashed": 2}
    runs = _child_runs(spec)
    assert len(runs) == 9 and len({r.data.tags["trial_id"] for r in runs}) == 9   # one run per trial
    by_fail: dict[str, list[Any]] = {}
    for r in runs:
        by_fail.setdefault(r.data.params["fail"], []).append(r)
    assert {r.info.status for r in by_fail["none"]} == {"FINISHED"}
    assert [r.data.tags["failure_class"] for r in by_fail["raise"]] == ["error", "error"]
    assert "dummy failure at step 2" in by_fail["raise"][0].data.tags["failure_message"]
    assert by_fail["nan"][0].data.tags["failure_class"] == "diverged"
    assert by_fail["exit"][0].data.tags["failure_class"] == "crashed"
    assert by_fail["kill"][0].data.tags["failure_class"] == "crashed"
    assert all(r.info.status == "FAILED" for f in ("raise", "nan", "exit", "kill") for r in by_fail[f])
    finished = by_fail["none"][0]
    history = MlflowClient(default_tracking_uri(spec.sweep_dir)).get_metric_history(finished.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert (spec.sweep_dir / "summary.csv").exists()
    assert {r["omp_num_threads"] for r in summary["results"].values()} == {"1"}   # threads = CPU share


def test_retries_restart_transient_failures_but_not_config_errors(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = _spec(tmp_path, name="retry", base={"steps": 3, "fail_at": 2, "marker_dir": str(markers)},
                 space={"x": {"grid": [1.0, 2.0]}, "fail": {"grid": ["once", "config"]}}, retries=2,
                 resources={"cpu": 1}, reuse_actors=False)   # counts attempts per actor start
    summary = launch(spec, quiet=True)
    configs = summary["configs"]
    states = {(c["x"], c["fail"]): r["state"] for r in summary["rows"] for tid, c in configs.items()
              if r["trial"] == tid}
    assert states[(1.0, "once")] == "finished" and states[(2.0, "once")] == "finished"
    assert states[(1.0, "config")] == "errored"
    assert summary["failures"] == {"config": 2}
    runs = _child_runs(spec)
    assert len(runs) == 4                                        # a retried trial keeps its own run
    # Per x: "once" ran its work twice (failed, then resumed and finished); "config" ran it once,
    # its retries failing at once on the remembered deterministic failure.
    for x in ("1.0", "2.0"):
        assert (markers / f"attempts-x={x}").read_text().count("\n") == 2 + 1


def test_fractional_gpus_share_one_device(tmp_path: Path) -> None:
    def overlap(summary: dict[str, Any]) -> int:
        spans = [(r["t_start"], r["t_now"]) for r in summary["results"].values()]
        return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)

    seen = {}
    for share in (0.25, 0.5):
        spec = _spec(tmp_path, name=f"gpu{share}", base={"steps": 1, "sleep_s": 1.5},
                     space={"x": {"grid": [float(i) for i in range(8)]}},
                     resources={"cpu": 0.25, "gpu": share}, max_concurrent=8, reuse_actors=True)
        summary = launch(spec, quiet=True)
        assert summary["finished"] == 8
        seen[share] = overlap(summary)
        assert {r["cuda_visible_devices"] for r in summary["results"].values()} == {"0"}
    # a quarter share lets more than two trials share the device, never more than four; a half, two.
    # (How many quarter-share trials overlap depends on how fast Ray starts them on a loaded machine:
    # all four in one run's 1.5 s, or the fourth just after the first ended.)
    assert seen[0.5] <= 2 < seen[0.25] <= 4, seen
    spec = _spec(tmp_path, name="nogpu", base={"steps": 1}, space={"x": 1.0}, resources={"cpu": 1})
    summary = launch(spec, quiet=True)
    assert [r["cuda_visible_devices"] for r in summary["results"].values()] == [""]   # hidden from CPU trials


def test_optuna_asha_conditional_and_seeded(tmp_path: Path) -> None:
    space = {"x": {"uniform": [0.0, 2.0]}, "choice": {"choice": ["a", "b"]},
             "extra": {"uniform": [5.0, 10.0], "when": {"choice": "b"}}}
    base = {"steps": 27, "target": 1.0}
    runs = []
    for name in ("opt1", "opt2"):
        spec = _spec(tmp_path, name=name, base=base, space=space, reuse_actors=True,
                     search={"algorithm": "optuna", "seed": 7, "metric": "loss", "mode": "min", "num_samples": 10},
                     scheduler={"type": "asha", "grace_period": 3, "reduction_factor": 3, "max_t": 27,
                                "time_attr": "step"},
                     resources={"cpu": 2}, max_concurrent=1)
        runs.append(launch(spec, quiet=True))
    first, second = runs
    assert {r["omp_num_threads"] for r in first["results"].values()} == {"2"}    # a 2-CPU trial: 2 threads
    configs = list(first["configs"].values())
    assert [c for c in configs] == list(second["configs"].values())      # same seed, same suggestions
    assert all(("extra" in c) == (c["choice"] == "b") for c in configs)  # conditional respected
    assert any(c["choice"] == "b" for c in configs) and any(c["choice"] == "a" for c in configs)
    steps = {tid: first["results"][tid]["step"] for tid in first["configs"]}
    bad = [tid for tid, c in first["configs"].items() if c["choice"] == "b"]   # known bad: loss >= 5
    stopped = [tid for tid in steps if steps[tid] < 27]
    assert all(steps[tid] in (3, 9) for tid in stopped)                 # stopped at ASHA's rungs
    # ASHA is asynchronous: a bad trial may run to the end only while its rung has too few peers.
    assert len(set(bad) & set(stopped)) >= len(bad) - 1 >= 1
    assert first["stopped_early"] == len(stopped)
    best = min(first["rows"], key=lambda r: r["loss"])
    assert first["configs"][best["trial"]]["choice"] == "a"


def test_cli_launch_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.yaml"
    path.write_text(yaml.safe_dump({"name": "cli", "family": "dummy", "storage": str(tmp_path / "runs"),
                                    "base": {"steps": 2}, "space": {"x": {"choice": [0.5, 1.5]}},
                                    "search": {"algorithm": "random", "metric": "loss", "num_samples": 2}}))
    assert main(["validate", str(path)]) == 0
    assert "valid dummy sweep 'cli'" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()                               # validation writes nothing
    assert main(["launch", str(path), "--quiet", "--set", "search.num_samples=3", "--set", "search.show=[step]"]) == 0
    out = capsys.readouterr().out
    assert "3 trials: 3 finished" in out and "mlflow ui --backend-store-uri" in out
    header = out.splitlines()[0].split()
    assert header[:4] == ["trial", "state", "loss", "step"]               # search.show: a column beside the metric
    import csv

    with open(tmp_path / "runs" / "cli" / "summary.csv") as f:
        assert [float(r["step"]) for r in csv.DictReader(f)] == [2.0, 2.0, 2.0]
    saved = yaml.safe_load((tmp_path / "runs" / "cli" / "spec.yaml").read_text())
    assert saved["search"]["num_samples"] == 3                            # recorded with the override
    assert main(["launch", str(path)]) == 2                               # the same sweep again: refused
    assert "already holds a sweep named 'cli'" in capsys.readouterr().err
    assert main(["launch", str(path), "--quiet", "--set", "name=broken", "--set", "base.fail=raise"]) == 1
    assert "no trial finished (2 trials): exit status 1" in capsys.readouterr().err   # CI sees a failed sweep


def test_trial_time_limit_is_enforced_and_tracked(tmp_path: Path) -> None:
    spec = _spec(tmp_path, name="slow", base={"steps": 40, "sleep_s": 0.1},
                 space={"x": {"grid": [0.0, 1.0]}}, trial_time_limit_s=1.0, resources={"cpu": 1})
    summary = launch(spec, quiet=True)
    assert summary["timeout"] == 2
    assert all(r["step"] < 40 for r in summary["results"].values())
    runs = _child_runs(spec)
    assert {(r.info.status, r.data.tags["failure_class"]) for r in runs} == {("FAILED", "timeout")}


def test_own_ray_keeps_its_temp_folder_small_and_removes_it(tmp_path: Path) -> None:
    """A sweep that starts its own Ray (not the module's shared one) in a subprocess, from a folder
    whose path is too long for Ray's sockets: Ray's temp folder gets a short one of its own, and
    removed; with stderr in a file (a batch job's log), the progress comes as plain lines."""
    import subprocess
    import sys

    from search.runtime import ray_temp_dir, spill_dir

    storage = tmp_path / ("r" * 30)
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({"name": "own", "family": "dummy", "storage": str(storage),
                                    "base": {"steps": 3}, "space": {"x": {"grid": [float(i) for i in range(10)]}},
                                    "search": {"algorithm": "grid", "metric": "loss", "num_samples": 2},
                                    "reuse_actors": True, "resources": {"cpu": 1}, "max_concurrent": 2}))
    exe = Path(sys.executable).parent / "dynsweep"
    out = subprocess.run([str(exe), "launch", str(path), "--progress-every", "0.5", "--num-cpus", "2"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "20 trials: 20 finished" in out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("Ray temp folder"))
    peak = float(line.split("peak ")[1].split(" MB")[0])
    assert 0 < peak < 200 and line.endswith(" 0.0 MB left after it")
    sweep = storage / "own"
    assert len(str(ray_temp_dir(sweep))) <= 40 and not ray_temp_dir(sweep).exists()
    assert not spill_dir(sweep).exists() and not (sweep / "ray").exists()
    progress = [ln for ln in out.stderr.splitlines() if "] progress: " in ln]
    assert len(progress) >= 3 and all("/20 trials done" in ln for ln in progress)   # the grid's real total
    assert "20/20 trials done (0 failed)" in progress[-1]
    assert "Token authentication" not in out.stderr and "WARNING" not in out.stderr   # a quiet start
    folders = list((sweep / "tune").glob("dynsweep_dummy_*"))
    assert len(folders) == 20 and all((f / "output.log").is_file() for f in folders)   # reused actors too
    client = MlflowClient(default_tracking_uri(sweep))
    runs = client.search_runs([client.get_experiment_by_name("own").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 20 and all("output.log" in [a.path for a in client.list_artifacts(r.info.run_id)]
                                       for r in children)


def test_ctrl_c_twice_stops_the_sweep_cleanly(tmp_path: Path) -> None:
    """Two SIGINTs in quick succession to `dynsweep launch` (its own Ray): the first stops the
    sweep, the second is ignored; trials and the parent run KILLED, the sweep `interrupted`,
    Ray's temp folder removed."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from search.runtime import ray_temp_dir

    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump({"name": "long", "family": "dummy", "storage": str(tmp_path / "r"),
                                    "base": {"steps": 200, "sleep_s": 0.2},
                                    "space": {"x": {"grid": [0.0, 1.0, 2.0, 3.0]}},
                                    "search": {"algorithm": "grid", "metric": "loss"}, "resources": {"cpu": 1}}))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dynsweep"), "launch", str(path), "--quiet",
                             "--num-cpus", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs_json = tmp_path / "r" / "long" / "mlflow_runs.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (runs_json.exists() and runs_json.read_text().count(":") >= 3):
        time.sleep(0.5)                                   # wait until trials are running
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in out and "0.0 MB left after it" in out and "Traceback" not in err
    assert "further Ctrl-C are ignored" in err
    assert not ray_temp_dir(tmp_path / "r" / "long").exists()
    assert json.loads((tmp_path / "r" / "long" / "sweep.json").read_text())["state"] == "interrupted"
    client = MlflowClient(default_tracking_uri(tmp_path / "r" / "long"))
    runs = client.search_runs([client.get_experiment_by_name("long").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert children and all(r.data.tags.get("dynsweep.outcome") == "interrupted" and r.info.status == "KILLED"
                            for r in children)
    assert [r.info.status for r in runs if "mlflow.parentRunId" not in r.data.tags] == ["KILLED"]


def test_ctrl_c_twice_during_ray_start_up_leaves_nothing_behind(tmp_path: Path) -> None:
    """Two SIGINTs while Ray starts: Ray finishes starting, then is shut down; no Ray process of
    this sweep is left, no temp folder, and no half-made sweep folder blocks the name."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from search.runtime import ray_temp_dir

    path = tmp_path / "early.yaml"
    path.write_text(yaml.safe_dump({"name": "early", "family": "dummy", "storage": str(tmp_path / "r"),
                                    "base": {"steps": 50, "sleep_s": 0.2}, "space": {"x": {"grid": [0.0, 1.0]}},
                                    "search": {"algorithm": "grid", "metric": "loss"}, "resources": {"cpu": 1}}))
    temp = ray_temp_dir(tmp_path / "r" / "early")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dynsweep"), "launch", str(path), "--quiet",
                             "--num-cpus", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not temp.exists():
        time.sleep(0.05)                                   # Ray is starting in this folder
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupt received while starting Ray" in err

    def ray_processes() -> list[str]:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(temp) in cmdline.read_bytes().decode(errors="replace"):
                    found.append(cmdline.parent.name)
            except OSError:
                continue
        return found

    deadline = time.time() + 20
    while ray_processes() and time.time() < deadline:
        time.sleep(0.5)
    assert ray_processes() == [] and os.path.exists(temp) is False
    assert not (tmp_path / "r" / "early").exists()         # no trial ran: the name stays free
