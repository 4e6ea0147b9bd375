"""Resuming sweeps: SIGKILL and SIGTERM of a real driver, errored trials, refusals, extend.

The kill tests run `dynsweep launch` and `dynsweep resume` as processes (each with its own Ray,
in its own session/process group that the test ends by id); the others run in this process on
one Ray started for the module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient

from search.cli import main
from search.journal import JOURNAL
from search.sweep_folder import SweepFolder

EXE = str(Path(sys.executable).parent / "dynsweep")
STEPS, REPORT, CKPT = 16, 2, 4


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    temp = Path("/tmp") / f"dynsweep-test-ray-r-{tmp_path_factory.getbasetemp().name}"
    ray.init(num_cpus=2, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    import shutil

    shutil.rmtree(temp, ignore_errors=True)


def _write_spec(tmp_path: Path, name: str, storage: str, **data: Any) -> Path:
    raw = {"name": name, "family": "dummy", "storage": storage,
           "base": {"steps": STEPS, "sleep_s": 0.25, "report_every": REPORT, "checkpoint_every": CKPT,
                    "marker_dir": str(tmp_path / "markers")},
           "space": {"x": {"grid": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}},
           "search": {"algorithm": "grid", "metric": "loss", "mode": "min", "num_samples": 1},
           "resources": {"cpu": 1}, "max_concurrent": 2}
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    (tmp_path / "markers").mkdir(exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _journal(folder: Path) -> list[dict[str, Any]]:
    path = folder / JOURNAL
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events


def _attempts(tmp_path: Path, x: float) -> list[int]:
    """The step each attempt of trial ``x`` started from (the dummy family's marker file)."""
    path = tmp_path / "markers" / f"attempts-x={x}"
    return [int(line.split()[1]) for line in path.read_text().splitlines()] if path.exists() else []


def _runs(folder: Path, experiment: str) -> tuple[list[Any], list[Any]]:
    """(child runs, parent runs) of the sweep, active ones only."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return ([r for r in runs if "mlflow.parentRunId" in r.data.tags],
            [r for r in runs if "mlflow.parentRunId" not in r.data.tags])


def _loss_steps(folder: Path, run_id: str) -> list[int]:
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    return sorted(m.step for m in client.get_metric_history(run_id, "loss"))


def _start(cmd: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL whatever is left of the process group this test started (Ray's processes of it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_for(predicate: Any, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _ended(events: list[dict[str, Any]]) -> set[str]:
    return {e["trial"] for e in events if e["e"] == "end"}


def _max_step(events: list[dict[str, Any]]) -> dict[str, int]:
    steps: dict[str, int] = {}
    for e in events:
        if e["e"] == "result":
            steps[e["trial"]] = max(steps.get(e["trial"], 0), e["step"])
    return steps


def _x_of(events: list[dict[str, Any]]) -> dict[str, float]:
    return {e["trial"]: e["config"]["x"] for e in events if e["e"] == "start"}


def _check_complete(tmp_path: Path, folder: Path, name: str, parent_before: str) -> None:
    """Every trial finished once in Tune and in MLflow, with a continuous metric history."""
    trials = SweepFolder(folder).trials()
    assert len(trials) == 6 and {t.status for t in trials} == {"TERMINATED"}
    children, parents = _runs(folder, name)
    assert [p.info.run_id for p in parents] == [parent_before] and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(t.trial_id for t in trials)
    for run in children:
        assert run.info.status == "FINISHED"
        assert _loss_steps(folder, run.info.run_id) == list(range(REPORT, STEPS + 1, REPORT))
    assert json.loads((folder / "sweep.json").read_text())["state"] == "finished"
    assert not (folder / "ray").exists()


@pytest.mark.parametrize("kill_at", ["trials_running", "right_after_a_trial_ends"])
def test_sigkill_of_the_driver_then_resume_from_another_folder(tmp_path: Path, kill_at: str) -> None:
    spec = _write_spec(tmp_path, "k", "runs")                     # relative storage: resolved at launch
    (tmp_path / "launch_here").mkdir()
    folder = tmp_path / "launch_here" / "runs" / "k"
    proc = _start([EXE, "launch", str(spec), "--quiet", "--num-cpus", "2"], tmp_path / "launch_here")
    try:
        if kill_at == "trials_running":   # some trials ended, others well past their first checkpoint
            _wait_for(lambda: len(_ended(_journal(folder))) >= 1
                      and sum(s >= 12 and t not in _ended(_journal(folder))
                              for t, s in _max_step(_journal(folder)).items()) >= 1)
        else:
            _wait_for(lambda: len(_ended(_journal(folder))) >= 1, timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _end_group(proc)
    events = _journal(folder)
    ended, reached, x_of = _ended(events), _max_step(events), _x_of(events)
    parent_before = json.loads((folder / "mlflow_runs.json").read_text())["__sweep__"]
    assert ended and len(ended) < 6

    status = subprocess.run([EXE, "status", str(folder)], capture_output=True, text=True, timeout=60)
    assert "state: died; driver: not running" in status.stdout and "resume with:" in status.stdout

    ray_temp = Path(json.loads((folder / "sweep.json").read_text())["ray_temp"])
    assert ray_temp.is_dir()                                        # the dead driver's Ray session folder
    if kill_at == "right_after_a_trial_ends":
        import shutil

        shutil.rmtree(ray_temp)                                     # as after a reboot: Ray's session folder gone
    (tmp_path / "elsewhere").mkdir()
    res = _start([EXE, "resume", str(folder), "--quiet", "--num-cpus", "2"], tmp_path / "elsewhere")
    try:
        out, err = res.communicate(timeout=300)
    finally:
        _end_group(res)
    assert res.returncode == 0, err[-3000:]
    assert "6 trials: 6 finished" in out
    _check_complete(tmp_path, folder, "k", parent_before)
    for trial_id, x in x_of.items():
        starts = _attempts(tmp_path, x)
        if trial_id in ended:
            assert starts == [0], (trial_id, starts)               # finished trials did not run again
        elif reached.get(trial_id, 0) >= 12:
            assert len(starts) == 2 and starts[1] >= CKPT, (trial_id, starts)   # continued from a checkpoint
    assert not (tmp_path / "elsewhere" / "runs").exists()          # nothing written relative to the new cwd
    assert not ray_temp.exists()                                    # the stale Ray folder was removed too


def test_sigterm_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    """SIGTERM (what SLURM and Kubernetes send) to a driver started in the background of a
    non-interactive shell, as batch scripts start it (SIGINT is ignored there): trials are
    stopped, the state saved, exit 130; resume finishes the sweep. Trials wait at step 10 until
    the test lets them go, so the sweep cannot end before the signal lands, however slow the
    machine."""
    gate = tmp_path / "gate"
    spec = _write_spec(tmp_path, "t", str(tmp_path / "runs"), base={"gate_file": str(gate), "gate_at": 10})
    folder = tmp_path / "runs" / "t"
    out_file, err_file, pid_file, rc_file = (tmp_path / n for n in ("out", "err", "pid", "rc"))
    script = (f"{EXE} launch {spec} --quiet --num-cpus 2 > {out_file} 2> {err_file} & echo $! > {pid_file}; "
              f"wait $!; echo $? > {rc_file}")
    shell = subprocess.Popen(["sh", "-c", script], cwd=tmp_path, start_new_session=True)
    try:
        _wait_for(lambda: sum(s >= 8 for s in _max_step(_journal(folder)).values()) >= 2)  # both at the gate
        os.kill(int(pid_file.read_text()), signal.SIGTERM)           # what SLURM / Kubernetes send
        shell.wait(timeout=120)
    finally:
        _end_group(shell)
    out, err = out_file.read_text(), err_file.read_text()
    assert rc_file.read_text().strip() == "130", err[-3000:]
    assert "interrupted" in out and "0.0 MB left after it" in out
    children, parents = _runs(folder, "t")
    assert {r.info.status for r in children} == {"KILLED"}           # none could have finished
    assert [p.info.status for p in parents] == ["KILLED"]
    assert json.loads((folder / "sweep.json").read_text())["state"] == "interrupted"
    gate.write_text("go")
    res = subprocess.run([EXE, "resume", "t", "--storage", str(tmp_path / "runs"), "--quiet", "--num-cpus", "2"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    _check_complete(tmp_path, folder, "t", parents[0].info.run_id)
    listing = subprocess.run([EXE, "ls", str(tmp_path / "runs")], capture_output=True, text=True, timeout=60)
    assert "t " in listing.stdout and "6 finished" in listing.stdout and "finished" in listing.stdout


def test_errored_trials_restart_with_more_cpus(tmp_path: Path, local_ray: None, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write_spec(tmp_path, "e", str(tmp_path / "runs"), base={"steps": 4, "sleep_s": 0.0, "fail": "once",
                                                                     "fail_at": 3},
                       space={"x": {"grid": [0.0, 1.0, 2.0]}})
    folder = tmp_path / "runs" / "e"
    assert main(["launch", str(spec), "--quiet"]) == 1                # no trial finished: exit status 1
    assert "3 errored (error 3)" in capsys.readouterr().out
    assert main(["status", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.count("[error] RuntimeError: dummy first-attempt failure at step 3") == 3
    assert "--restart-errored" in out
    assert main(["resume", str(folder), "--restart-errored", "--set", "resources.cpu=2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 trials: 3 finished" in out
    children, _ = _runs(folder, "e")
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags.get("restarted") for r in children} == {"true"}
    assert not any("failure_class" in r.data.tags for r in children)   # no stale tags of the failed attempt
    for x in (0.0, 1.0, 2.0):
        assert _attempts(tmp_path, x) == [0, 0]                    # restarted from scratch
    summary = (folder / "summary.csv").read_text()
    assert summary.count("finished") == 3
    # the spec change was recorded, the old spec kept
    assert yaml.safe_load((folder / "spec.yaml").read_text())["resources"]["cpu"] == 2
    assert yaml.safe_load((folder / "spec.1.yaml").read_text())["resources"]["cpu"] == 1
    trials = SweepFolder(folder).trials()
    assert {t.last_result["omp_num_threads"] for t in trials} == {"2"}   # the restarted trials had 2 CPUs


def test_resume_refusals_name_the_problem_and_change_nothing(tmp_path: Path, local_ray: None,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write_spec(tmp_path, "r", str(tmp_path / "runs"), base={"steps": 2, "sleep_s": 0.0},
                       space={"x": {"grid": [0.0, 1.0]}})
    folder = tmp_path / "runs" / "r"
    assert main(["launch", str(spec), "--quiet"]) == 0
    capsys.readouterr()
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "driver.lock"}

    def refused(args: list[str], *needles: str) -> None:
        assert main(args) == 2
        err = capsys.readouterr().err
        for needle in needles:
            assert needle in err, err
        now = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "driver.lock"}
        assert now == snapshot

    refused(["resume", str(folder), "--set", "base.steps=5"], "base.steps cannot change", "resources.cpu")
    other = _write_spec(tmp_path, "r", str(tmp_path / "runs"), base={"steps": 2, "sleep_s": 0.0},
                        space={"x": {"grid": [0.0, 1.0, 7.0]}})
    refused(["resume", str(folder), "--spec", str(other)], "space.x.grid cannot change")
    refused(["resume", str(tmp_path / "nowhere")], "no sweep folder there")
    with SweepFolder(folder).driver_lock("launch"):                 # a live driver holds the lock
        refused(["resume", str(folder)], "a driver is running this sweep already", f"pid {os.getpid()}")
        assert main(["status", str(folder)]) == 0
        assert f"driver: alive, pid {os.getpid()}" in capsys.readouterr().out
        refused(["launch", str(spec), "--quiet"], "already holds a sweep", "dynsweep resume")

    meta_path = folder / "sweep.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "dynsweep_version": "0.0.1"}))
    snapshot[meta_path] = meta_path.read_bytes()
    refused(["resume", str(folder)], "made by dynsweep 0.0.1", "this is dynsweep")
    meta_path.write_text(json.dumps(meta))
    snapshot[meta_path] = meta_path.read_bytes()
    spec_path = folder / "spec.yaml"
    spec_path.write_text(spec_path.read_text().replace("steps: 2", "steps: 3"))
    snapshot[spec_path] = spec_path.read_bytes()
    refused(["resume", str(folder)], "the recorded spec was changed")


def test_extend_an_optuna_sweep_continues_its_history(tmp_path: Path, local_ray: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    spec = _write_spec(tmp_path, "o", str(tmp_path / "runs"), base={"steps": 2, "sleep_s": 0.0},
                       space={"x": {"uniform": [-3.0, 3.0]}},
                       search={"algorithm": "optuna", "seed": 3, "num_samples": 3})
    folder = tmp_path / "runs" / "o"
    assert main(["launch", str(spec), "--quiet"]) == 0
    first = {t.trial_id: t.config["x"] for t in SweepFolder(folder).trials()}
    assert len(first) == 3
    capsys.readouterr()
    assert main(["extend", str(folder), "--num-samples", "5", "--quiet"]) == 0
    assert "5 trials: 5 finished" in capsys.readouterr().out
    trials = {t.trial_id: t.config["x"] for t in SweepFolder(folder).trials()}
    assert len(trials) == 5 and {k: trials[k] for k in first} == first
    assert len(set(trials.values())) == 5                            # no configuration suggested twice
    for x in first.values():
        assert _attempts(tmp_path, x) == [0]                         # the first three did not run again
    children, parents = _runs(folder, "o")
    assert len(children) == 5 and len(parents) == 1
    assert json.loads((folder / "sweep.json").read_text())["num_samples"] == 5
    grid = _write_spec(tmp_path, "g", str(tmp_path / "runs"), base={"steps": 1, "sleep_s": 0.0},
                       space={"x": {"grid": [0.0]}})
    assert main(["launch", str(grid), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["extend", str(tmp_path / "runs" / "g"), "--num-samples", "4"]) == 2
    assert "extend needs an Optuna sweep" in capsys.readouterr().err


def test_launch_resume_existing_launches_resumes_and_sets_aside_a_folder_without_state(
        tmp_path: Path, local_ray: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`launch --resume-existing` (what a requeued batch job or a retried Kubernetes job runs):
    a new sweep is launched; an existing one is resumed, not refused; a folder whose driver died
    before Tune saved any state is kept aside and the sweep launched afresh."""
    spec = _write_spec(tmp_path, "re", str(tmp_path / "runs"), base={"steps": 4, "sleep_s": 0.0},
                       space={"x": {"grid": [0.0, 1.0]}})
    folder = tmp_path / "runs" / "re"
    argv = ["launch", str(spec), "--quiet", "--resume-existing"]
    assert main(argv) == 0 and "2 trials: 2 finished" in capsys.readouterr().out
    assert main(argv[:-1]) == 2 and "already holds a sweep" in capsys.readouterr().err   # without the flag
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "resuming it (--resume-existing)" in captured.err and "2 trials: 2 finished" in captured.out
    assert main(argv + ["--set", "base.steps=5"]) == 2                   # another sweep under the same name
    assert "base.steps cannot change when a sweep is resumed" in capsys.readouterr().err
    for path in SweepFolder(folder).tune_state_files():                  # as if the driver died at once
        path.unlink()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "launching the sweep afresh" in captured.err and "2 trials: 2 finished" in captured.out
    aside = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("re.aborted-")]
    assert len(aside) == 1 and (aside[0] / "mlflow.db").exists()        # kept, not deleted
