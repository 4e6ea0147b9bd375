"""Sweeps on Ray clusters simulated on this machine: Ray's fake autoscaling provider, and
``ray.cluster_utils.Cluster`` with a worker node killed mid-trial. Marked ``cluster``
(``pytest -m cluster`` selects them; CI runs them with the rest)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.cluster
EXE = str(Path(sys.executable).parent / "dynsweep")
HEAD_ID = "f" * 51 + "00000"  # the fake provider's head node id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """End the process group this test started (the head and everything it launched)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            time.sleep(1)
        except subprocess.TimeoutExpired:
            continue


def _spec(tmp_path: Path, name: str, **data: Any) -> Path:
    raw = {"name": name, "family": "dummy", "storage": str(tmp_path / "runs"),
           "base": {"steps": 8, "sleep_s": 0.25, "checkpoint_every": 2, "marker_dir": str(tmp_path / "markers")},
           "space": {"x": {"grid": [0.0, 1.0, 2.0, 3.0]}},
           "search": {"algorithm": "grid", "metric": "loss", "mode": "min"}, **data}
    (tmp_path / "markers").mkdir(exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture()
def fake_autoscaling_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A head (no CPUs) with Ray's fake multi-node autoscaler: worker type `gpu_worker` with 1 CPU
    and 1 logical GPU, at most 2, idle timeout 6 s; its own port, temp folder and auth token."""
    ip = ray._private.services.get_node_ip_address()
    port = _free_port()
    temp = Path(f"/tmp/dynsweep-fake-{secrets.token_hex(4)}")
    config = {
        "cluster_name": "fake", "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.1,
        "provider": {"type": "fake_multinode", "gcs_address": f"{ip}:{port}", "launch_multiple": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "use_node_id_as_ip": True, "head_node_id": HEAD_ID},
        "auth": {"ssh_user": "ubuntu"}, "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2}},
        **{k: [] for k in ("cluster_synced_files", "rsync_exclude", "rsync_filter", "initialization_commands",
                           "setup_commands", "head_setup_commands", "worker_setup_commands",
                           "head_start_ray_commands", "worker_start_ray_commands")},
        "file_mounts": {}, "file_mounts_sync_continuously": False}
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(config))
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": HEAD_ID, "RAY_TMPDIR": str(temp)}
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
                             "--num-cpus", "0", "--temp-dir", str(temp), "--autoscaling-config", str(path),
                             "--include-dashboard", "false", "--block"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((ip, port)) == 0:
                    break
            time.sleep(0.5)
        time.sleep(3)
        yield f"{ip}:{port}", {"RAY_AUTH_TOKEN": token}
    finally:
        _stop_group(head)
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


POLLER = """
import os, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
marker = os.path.join(os.getcwd(), "sweep_ended")
t0, ended_at = time.time(), None
while time.time() - t0 < 300:
    n = sum(node["Alive"] for node in ray.nodes())
    ended = os.path.exists(marker)
    print(f"{time.time() - t0:.1f} {n} {int(ended)}", flush=True)
    if ended and ended_at is None:
        ended_at = time.time()
    if ended and (n == 1 or time.time() - ended_at > 90):
        break
    time.sleep(0.5)
ray.shutdown()
"""


def test_pending_trials_scale_a_worker_type_up_and_idle_workers_down(
        tmp_path: Path, fake_autoscaling_cluster: tuple[str, dict[str, str]]) -> None:
    address, token = fake_autoscaling_cluster
    spec = _spec(tmp_path, "scale", resources={"cpu": 1, "gpu": 0.5}, max_concurrent=4, retries=2)
    env = {**os.environ, **token}
    env.pop("RAY_AUTH_MODE", None)                           # dynsweep switches token mode on itself
    sweep = subprocess.Popen([EXE, "launch", str(spec), "--address", address, "--quiet"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    # node counts over time, from a poller process in token mode (Ray reads the mode once per process)
    poller = subprocess.Popen([sys.executable, "-c", POLLER, address], env={**env, "RAY_AUTH_MODE": "token"},
                              cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = sweep.communicate(timeout=240)
        (tmp_path / "sweep_ended").write_text("")
        polled, _ = poller.communicate(timeout=120)
    finally:
        for proc in (sweep, poller):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    samples = [(float(t), int(n), s == "1") for t, n, s in (line.split() for line in polled.splitlines())]
    assert sweep.returncode == 0, err[-3000:]
    assert "4 trials: 4 finished" in out
    during = [n for _, n, ended in samples if not ended]
    after = [n for _, n, ended in samples if ended]
    assert during[0] == 1                                    # the head alone before the sweep asked
    assert 3 in during                                       # head + the 2 workers the pending trials asked for
    # The fake provider launches in batches and may briefly start one worker too many; the
    # autoscaler trims it back to max_workers at once: never more than one extra, never for long.
    assert max(during) <= 4
    longest, run = 0, 0
    for n in during:
        run = run + 1 if n > 3 else 0
        longest = max(longest, run)
    assert longest <= 10                                     # samples every 0.5 s: under 5 s over the limit
    assert after and after[-1] == 1                          # idle workers removed after the timeout


@pytest.fixture()
def local_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """ray.cluster_utils.Cluster: a head without CPUs and two 1-CPU worker nodes, own temp folder."""
    from ray.cluster_utils import Cluster

    temp = f"/tmp/dynsweep-cl-{secrets.token_hex(4)}"
    (Path(temp) / "ray").mkdir(parents=True)
    monkeypatch.setenv("RAY_TMPDIR", temp)                  # where Cluster keeps its address file
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": temp,
                                                            "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        cluster.shutdown()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def test_a_killed_worker_node_costs_nothing_with_retries(tmp_path: Path, local_cluster: Any) -> None:
    from search.launch import launch
    from search.spec import load_spec

    cluster, workers = local_cluster
    spec = load_spec(_spec(tmp_path, "kill", base={"steps": 16, "sleep_s": 0.25, "checkpoint_every": 2,
                                                   "marker_dir": str(tmp_path / "markers")},
                           space={"x": {"grid": [0.0, 1.0]}}, resources={"cpu": 1}, retries=2))
    journal = spec.sweep_dir / "tracking_journal.jsonl"
    killed: list[str] = []

    def kill_a_worker_mid_trial() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            steps = {}
            if journal.exists():
                for line in journal.read_text().splitlines():
                    try:
                        event = json.loads(line)
                    except json.JSONDecodeError:  # a line being written
                        continue
                    if event["e"] == "result":
                        steps[event["trial"]] = max(steps.get(event["trial"], 0), event["step"])
            if len(steps) == 2 and min(steps.values()) >= 6:      # both trials running, checkpoints written
                cluster.remove_node(workers[0], allow_graceful=False)
                killed.append("yes")
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=kill_a_worker_mid_trial, daemon=True)
    watcher.start()
    summary = launch(spec, address=cluster.address, quiet=True)
    watcher.join(timeout=5)
    assert killed
    assert (summary["trials"], summary["finished"], summary["errored"]) == (2, 2, 0)
    attempts = {x: [int(line.split()[1]) for line in (tmp_path / "markers" / f"attempts-x={x}").read_text().splitlines()]
                for x in (0.0, 1.0)}
    retried = [a for a in attempts.values() if len(a) > 1]
    assert len(retried) == 1 and retried[0][0] == 0 and retried[0][1] >= 6   # continued from its checkpoint
    client = MlflowClient(f"sqlite:///{spec.sweep_dir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("kill").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "loss"))
        assert steps == list(range(1, 17))                                     # nothing lost, nothing twice
