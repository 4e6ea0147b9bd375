"""``tracking.artifacts``: big sweeps keep checkpoints and per-point files off the tracking store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from search.spec import load_spec
from trainables.common.errors import ConfigError

from sweeprun import run_sweep  # tests/sweeprun.py


def _raw(root: Path, artifacts: str | None) -> dict:
    raw = {"name": f"art-{artifacts}", "family": "dummy", "storage": str(root / "runs"),
           "base": {"steps": 4, "report_every": 2}, "space": {"x": {"grid": [0.0, 1.0]}},
           "search": {"algorithm": "grid", "metric": "loss", "mode": "min"}, "resources": {"cpu": 1}}
    if artifacts is not None:
        raw["tracking"] = {"artifacts": artifacts}
    return raw


def test_a_bad_policy_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path, "some")))
    with pytest.raises(ConfigError, match=r"tracking.artifacts: 'some' is not allowed; allowed: all, model, none"):
        load_spec(path)


def test_checkpoints_stay_off_the_store_when_asked(tmp_path: Path) -> None:
    """``none``: no checkpoint artefact (``all``, the default, is what every other sweep test runs:
    ``dynsweep evaluate`` and ``rerun`` download the checkpoint it logs)."""
    artifacts = "none"
    from mlflow.tracking import MlflowClient

    spec, _ = run_sweep(tmp_path, _raw(tmp_path, artifacts), Path("/tmp") / f"dsw-art-{artifacts}-{os.getpid()}")
    client = MlflowClient(f"sqlite:///{spec.sweep_dir / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.trial_id != ''")
    assert len(runs) == 2
    for run in runs:
        logged = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "checkpoint" not in logged, logged
        assert run.data.tags.get("dynsweep.artifacts") == "none"
        assert "config.yaml" in logged and run.data.metrics["loss"] >= 0   # params, metrics, config: always
