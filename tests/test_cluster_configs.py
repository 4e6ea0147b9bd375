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
    assert any("dynsweep" in c for c in config["setup_commands"])


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["template"]["spec"]["containers"]


def test_kuberay_manifest_autoscales_with_token_auth_and_holds_every_search_space() -> None:
    manifest = yaml.safe_load((CLUSTER / "kuberay.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    assert spec["enableInTreeAutoscaling"] is True and spec["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = spec["workerGroupSpecs"]
    holds = []
    for group in [spec["headGroupSpec"], *groups]:
        for container in _containers(group):
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token"
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"
            assert any(m["mountPath"] == "/shared" for m in container["volumeMounts"])
    for group in groups:
        assert 0 <= group["minReplicas"] <= group["maxReplicas"] and group["groupName"]
        params = group["rayStartParams"]
        cpus, gpus = float(params["num-cpus"]), float(params.get("num-gpus", 0))
        limits = _containers(group)[0]["resources"]["limits"]
        assert float(limits["cpu"]) == cpus and float(limits.get("nvidia.com/gpu", 0)) == gpus
        holds.append((cpus, gpus))
    for name, cpu, gpu in _spaces() + [("fractional", 1.0, 0.25)]:
        assert any(cpu <= c and gpu <= g for c, g in holds), name


def test_slurm_script_is_valid_bash_with_a_head_workers_token_and_the_driver() -> None:
    script = (CLUSTER / "slurm.sh").read_text()
    subprocess.run(["bash", "-n", str(CLUSTER / "slurm.sh")], check=True)
    for needle in ("#SBATCH --nodes", "ray start --head", "ray start --address", "export RAY_AUTH_TOKEN",
                   "export RAY_AUTH_MODE=token", "dynsweep launch", "--address", "DYNSWEEP_DATASETS"):
        assert needle in script, needle


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
