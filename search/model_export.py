"""A trial's exported TorchScript (``model.pt`` + ``model.json``) as an MLflow pyfunc model.

:func:`log_model` saves a pyfunc model with MLflow's "models from code"
(``search/torchscript_pyfunc.py``, which imports only mlflow, torch, numpy and json) and logs
it as the MLflow 3 logged model ``model`` of a run, so that in a notebook, without dynsweep::

    mlflow.pyfunc.load_model("runs:/<run id>/model").predict(x)

predicts what the trained model predicted. The signature and input example come from the
example the family recorded; the description (units) is the model's ``description`` tag and the
``dynsweep`` entry of the MLmodel metadata. Uses a given ``MlflowClient`` and run id only: no
active run and no global tracking URI are touched (the driver writes from one thread).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PYFUNC_FILE = Path(__file__).with_name("torchscript_pyfunc.py")



def _requirements() -> list[str]:
    import numpy
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={numpy.__version__}"]


def _example(meta: dict[str, Any]) -> Any:
    import numpy as np

    arrays = {s["name"]: np.asarray(meta["example_inputs"][s["name"]], dtype=s["dtype"]) for s in meta["inputs"]}
    return arrays if len(arrays) > 1 else next(iter(arrays.values()))


def log_model(client_or_uri: Any, run_id: str, artifacts_dir: str | os.PathLike[str], name: str = "model") -> str:
    """Log ``artifacts_dir/model.pt`` + ``model.json`` as the pyfunc model ``name`` of run ``run_id``.

    Args:
        client_or_uri: an ``MlflowClient`` or a tracking URI.
    Returns:
        the logged model's id (``models:/<id>``; ``runs:/<run_id>/<name>`` resolves to it).
    """
    import mlflow
    import numpy as np
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model, infer_signature
    from mlflow.tracking import MlflowClient

    client = client_or_uri if isinstance(client_or_uri, MlflowClient) else MlflowClient(str(client_or_uri))
    folder = Path(artifacts_dir)
    meta = json.loads((folder / "model.json").read_text())
    example = _example(meta)
    output = np.asarray(meta["example_output"], dtype=meta["output"]["dtype"])
    signature = infer_signature(example, output)
    run = client.get_run(run_id)
    logged = client.create_logged_model(experiment_id=run.info.experiment_id, name=name, source_run_id=run_id,
                                        tags={"description": meta["description"], "mlflow.note.content": meta["description"],
                                              "dynsweep.family": meta.get("family", "")},
                                        model_type="torchscript")
    try:
        with tempfile.TemporaryDirectory(prefix="dynsweep-model-") as tmp:
            path = Path(tmp) / name
            mlflow.pyfunc.save_model(
                str(path), python_model=str(PYFUNC_FILE),
                artifacts={"torchscript": str(folder / "model.pt"), "meta": str(folder / "model.json")},
                signature=signature, input_example=example, pip_requirements=_requirements(),
                metadata={"dynsweep": {k: meta[k] for k in ("family", "description", "inputs", "output")}},
                mlflow_model=Model(artifact_path=logged.artifact_location, run_id=run_id,
                                   model_id=logged.model_id, model_uuid=logged.model_id))
            client.log_model_artifacts(logged.model_id, str(path))
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    return logged.model_id
