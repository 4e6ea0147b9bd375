"""Issue 18: every family's final model loads through MLflow without dynsweep.

Each family trains its smoke config (a ``LocalReporter``, datasets under tmp_path), the exported
``model.pt`` + ``model.json`` is logged with :func:`search.model_export.log_model` into a fresh
SQLite store, and a fresh interpreter in which ``search``, ``trainables`` and ``analysis`` cannot
be imported loads ``runs:/<id>/model`` and predicts the example; the result must equal what the
trained model itself predicted (recorded before tracing) to float32 precision.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trainables.common.reporter import LocalReporter
from trainables.registry import FAMILIES, load

FAMILY_NAMES = ("twobody", "regression", "pendulum", "worldmodels", "timestepper")

NOTEBOOK = r"""
import json, sys
sys.modules['search'] = sys.modules['trainables'] = sys.modules['analysis'] = None
import numpy as np
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
out = {}
for name, run_id, example, dtypes in json.loads(sys.argv[2]):
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    arrays = {k: np.asarray(v, dtype=dtypes[k]) for k, v in example.items()}
    x = arrays if len(arrays) > 1 else next(iter(arrays.values()))
    y = np.asarray(model.predict(x))
    out[name] = {"pred": y.tolist(), "dtype": str(y.dtype),
                 "description": model.metadata.metadata["dynsweep"]["description"],
                 "has_example": model.metadata.saved_input_example_info is not None,
                 "leaked": [m for m in ("search", "trainables", "analysis") if sys.modules.get(m) is not None]}
print("RESULT" + json.dumps(out))
"""


def _job(name: str, run_id: str, meta: dict[str, Any]) -> tuple[str, str, dict[str, Any], dict[str, str]]:
    return name, run_id, meta["example_inputs"], {s["name"]: s["dtype"] for s in meta["inputs"]}


def _notebook(uri: str, jobs: list[tuple[str, str, dict[str, Any], dict[str, str]]], cwd: Path) -> dict[str, Any]:
    """Run :data:`NOTEBOOK` in a fresh interpreter (cwd outside the checkout, no PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    proc = subprocess.run([sys.executable, "-c", NOTEBOOK, uri, json.dumps(jobs)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Train, export, log and load every family once; name -> (meta, notebook result)."""
    from mlflow.tracking import MlflowClient

    from search.model_export import log_model

    tmp = tmp_path_factory.mktemp("model_export")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("export", artifact_location=(tmp / "mlartifacts").as_uri())
    jobs, metas = [], {}
    for name in FAMILY_NAMES:
        family = FAMILIES[name]
        config = dict(family.smoke)
        if "datasets_root" in {f.name for f in dataclasses.fields(load(family.config))}:
            config["datasets_root"] = str(tmp / "datasets")
        reporter = LocalReporter(tmp / name, progress=False)
        load(family.run)(config, reporter)
        meta = json.loads((reporter.artifact_dir() / "model.json").read_text())
        run_id = client.create_run(exp, run_name=name).info.run_id
        log_model(client, run_id, reporter.artifact_dir())
        jobs.append(_job(name, run_id, meta))
        metas[name] = meta
    cwd = tmp / "notebook"
    cwd.mkdir()
    results = _notebook(uri, jobs, cwd)
    return {name: (metas[name], results[name]) for name in FAMILY_NAMES}


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_mlflow_model_predicts_like_the_trained_model(name: str, loaded: dict[str, Any]) -> None:
    meta, got = loaded[name]
    assert got["leaked"] == []
    assert got["has_example"]
    want = np.asarray(meta["example_output"])
    pred = np.asarray(got["pred"])
    assert pred.shape == want.shape and pred.shape[0] == len(next(iter(meta["example_inputs"].values())))
    np.testing.assert_allclose(pred, want, rtol=2e-6, atol=1e-30)
    assert got["description"] == meta["description"] and "(N" in got["description"]


def test_model_shapes_and_units_as_documented(loaded: dict[str, Any]) -> None:
    shapes = {name: ([(s["name"], s["shape"]) for s in meta["inputs"]], meta["output"]["shape"])
              for name, (meta, _) in loaded.items()}
    assert shapes["twobody"] == ([("states", [-1, 6])], [-1, 3])
    assert "km/s^2" in loaded["twobody"][0]["description"]
    assert shapes["regression"] == ([("inputs", [-1, 3])], [-1, 1])
    (window, wshape), = shapes["pendulum"][0]
    assert window == "window" and wshape[0] == -1 and wshape[2] in (4, 8) and shapes["pendulum"][1] == [-1, 4]
    names = [n for n, _ in shapes["worldmodels"][0]]
    assert names[:2] == ["state", "action"] and shapes["worldmodels"][1][0] == -1
    assert shapes["timestepper"][1] == [-1] and "log r_ij" in loaded["timestepper"][0]["description"]


def test_sweep_trial_ends_with_a_loadable_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from search.cli import main
    from search.tracking import default_tracking_uri

    monkeypatch.setenv("DYNSWEEP_DATASETS", str(tmp_path / "datasets"))
    sets = ["base.steps=20", "base.report_every=10", "base.demo_rows=500", "search.num_samples=1",
            "space.widths=16x16", "scheduler.grace_period=10", "scheduler.max_t=20", f"storage={tmp_path / 'runs'}"]
    code = main(["launch", "search_spaces/regression_robust.yaml", "--num-cpus", "2",
                 *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    uri = default_tracking_uri(tmp_path / "runs" / "regression_robust")
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("regression_robust")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "model_export_error" not in runs[0].data.tags
    meta_path = Path(client.download_artifacts(runs[0].info.run_id, "checkpoint/artifacts/model.json", str(tmp_path)))
    meta = json.loads(meta_path.read_text())
    (tmp_path / "nb").mkdir()
    got = _notebook(uri, [_job("trial", runs[0].info.run_id, meta)], tmp_path / "nb")["trial"]
    np.testing.assert_allclose(np.asarray(got["pred"]), np.asarray(meta["example_output"]), rtol=2e-6, atol=1e-30)
