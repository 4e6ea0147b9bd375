"""The MLflow pyfunc model of a trial (MLflow "models from code"): runs the TorchScript a family
exported (``model.pt``) as ``model.json`` describes it. It is copied into every logged model and
loaded without dynsweep, so it imports only mlflow, torch, numpy and json.

``predict`` takes, for a model with one input, an array ``(N, ...)`` (or a DataFrame of its
columns, for 2-D inputs); for several inputs (world models: ``state``, ``action``, ``params``), a
dict of arrays by name. It returns the output array.
"""

import json

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class TorchScriptModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["meta"]) as f:
            self.meta = json.load(f)
        self.module = torch.jit.load(context.artifacts["torchscript"], map_location="cpu")
        self.module.eval()

    def _arrays(self, model_input):
        specs = self.meta["inputs"]
        if isinstance(model_input, dict):
            return [model_input[s["name"]] for s in specs]
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame
            if len(specs) != 1:
                return [np.stack(model_input[s["name"]].to_list()) for s in specs]
            return [model_input.to_numpy()]
        if len(specs) != 1:
            raise ValueError(f"this model takes a dict of arrays {[s['name'] for s in specs]}")
        return [model_input]

    # The hint is one MLflow reads as "no schema from the hint" (np.ndarray): the logged signature
    # validates the input, and MLflow does not warn that ``predict`` has no type hints. A dict of
    # arrays (several inputs) or a DataFrame is accepted too, as the module docstring says.
    def predict(self, context, model_input: np.ndarray, params=None):
        args = [torch.as_tensor(np.ascontiguousarray(np.asarray(a, dtype=s["dtype"])))
                for a, s in zip(self._arrays(model_input), self.meta["inputs"])]
        with torch.no_grad():
            return self.module(*args).numpy()


mlflow.models.set_model(TorchScriptModel())
