"""The embedded MLflow store starts from a cached, fully migrated empty store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.store_template import cache_dir, prepare_store


def test_new_store_is_a_copy_of_the_template_and_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    prepare_store(uri)
    templates = list(cache_dir().glob("mlflow-*-empty.db"))
    assert len(templates) == 1 and (tmp_path / "a" / "mlflow.db").read_bytes() == templates[0].read_bytes()
    client = MlflowClient(uri)
    exp = client.create_experiment("e")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.5, step=3)
    assert client.get_metric_history(run.info.run_id, "loss")[0].step == 3
    # a second store from the same template is independent of the first
    uri2 = f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
    prepare_store(uri2)
    assert MlflowClient(uri2).get_experiment_by_name("e") is None


def test_existing_store_and_other_uris_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    MlflowClient(uri).create_experiment("kept")
    before = db.read_bytes()
    prepare_store(uri)
    assert db.read_bytes() == before and MlflowClient(uri).get_experiment_by_name("kept") is not None
    prepare_store("http://127.0.0.1:1")  # a server: nothing to prepare, nothing contacted
    assert not (tmp_path / "cache").exists()
