"""The check every plot test makes: ``dynsweep plot`` drew a real PNG of the kind's declared size,
not blank, and logged it to the sweep's parent run (``DYNSWEEP_KEEP_PLOTS=dir`` keeps a copy)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from analysis.plots import ALL


def assert_plot(sweep_dir: Path, kind: str, out: Path, name: str) -> None:
    """``out/<kind>.png`` is a non-blank PNG of ``ALL[kind].size``, also in MLflow under the
    parent run's ``plots/``; ``name`` names the copy kept under ``$DYNSWEEP_KEEP_PLOTS``."""
    from matplotlib.image import imread
    from mlflow.tracking import MlflowClient

    image = imread(out / f"{kind}.png")
    width, height = ALL[kind].size
    assert image.shape[:2] == (height, width)                              # the declared size
    assert float(image[..., :3].std()) > 0.01                               # not blank
    keep = os.environ.get("DYNSWEEP_KEEP_PLOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / f"{kind}.png", Path(keep) / f"{name}.png")
    client = MlflowClient(f"sqlite:///{(sweep_dir / 'mlflow.db').resolve()}")
    parent = json.loads((sweep_dir / "mlflow_runs.json").read_text())["__sweep__"]
    assert f"plots/{kind}.png" in {a.path for a in client.list_artifacts(parent, "plots")}
