"""A trial's final model as TorchScript, loadable without dynsweep (issue 18).

:func:`export_torchscript` traces a small wrapper ``nn.Module`` whose ``forward`` is the family's
natural prediction in physical units (each family's ``export.py``) and writes two files into
the family's artefact folder:

- ``model.pt``: the TorchScript module (``torch.jit.load`` it; its inputs are the tensors named
  in ``model.json``, in that order; its output is one tensor);
- ``model.json``: format ``dynsweep.torchscript`` version 1: ``inputs`` (name, shape with -1 for
  the batch, dtype, units, columns), ``output`` (the same), ``description`` (one sentence with
  the units), ``family``, ``example_inputs`` ({name: nested lists}) and ``example_output``
  (what the model itself returned for them, before tracing).

The driver (``search/model_export.py``) turns the pair into an MLflow pyfunc model; families
never import MLflow. Tracing records one path through the code: it is checked against the
eager module on the example, and a wrapper must keep data-dependent control flow out of
``forward``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

MODEL_FILE = "model.pt"
META_FILE = "model.json"
FORMAT = "dynsweep.torchscript"
VERSION = 1


def _spec(name: str, array: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "shape": [-1, *array.shape[1:]], "dtype": str(array.dtype),
            "units": info.get("units", ""), "columns": list(info.get("columns", []))}


def export_torchscript(module: torch.nn.Module, example_inputs: dict[str, np.ndarray], folder: str | os.PathLike[str],
                       description: dict[str, Any]) -> Path:
    """Write ``folder/model.pt`` and ``folder/model.json``; returns the folder.

    Args:
        module: a wrapper whose ``forward(*inputs)`` takes the tensors of ``example_inputs`` in
            order (batch first) and returns one tensor ``(N, ...)`` in physical units. It is
            deep-copied to the CPU and traced in eval mode; the trained model is left as it is.
        example_inputs: ``{name: array (N, ...)}``, a few real inputs (their dtypes are the
            model's input dtypes).
        description: ``{"family": str, "description": str, "inputs": {name: {"units", "columns"}},
            "output": {"name", "units", "columns"}}``.
    Raises:
        RuntimeError: the traced module does not reproduce the eager one on the example.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(module).to("cpu").eval()
    arrays = {k: np.ascontiguousarray(v) for k, v in example_inputs.items()}
    tensors = tuple(torch.from_numpy(a.copy()) for a in arrays.values())
    with torch.no_grad():
        eager = module(*tensors).detach()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module, tensors, check_trace=False)
        again = traced(*tensors)
    if again.shape != eager.shape or not torch.allclose(again, eager, rtol=1e-6, atol=1e-12, equal_nan=True):
        raise RuntimeError("the traced model does not reproduce the eager model on the example inputs")
    out = eager.numpy()
    inputs = description.get("inputs", {})
    output = description.get("output", {})
    meta = {"format": FORMAT, "version": VERSION, "family": description.get("family", ""),
            "description": description.get("description", ""),
            "inputs": [_spec(name, a, inputs.get(name, {})) for name, a in arrays.items()],
            "output": _spec(output.get("name", "output"), out, output),
            "example_inputs": {name: a.tolist() for name, a in arrays.items()},
            "example_output": out.tolist()}
    tmp = folder / f".{MODEL_FILE}.tmp"
    with warnings.catch_warnings():  # "torch.jit.save is deprecated": TorchScript is what loads without the code
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(tmp))
    tmp.replace(folder / MODEL_FILE)
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1, allow_nan=True))
    tmp.replace(folder / META_FILE)
    return folder


def check_export(folder: str | os.PathLike[str]) -> list[str]:
    """Problems with ``model.pt`` + ``model.json`` in ``folder`` (empty when the TorchScript,
    loaded with ``torch.jit.load``, reproduces the recorded example output)."""
    folder = Path(folder)
    missing = [f for f in (MODEL_FILE, META_FILE) if not (folder / f).is_file()]
    if missing:
        return [f"{', '.join(missing)} not written"]
    try:
        meta = json.loads((folder / META_FILE).read_text())
        module = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
        args = [torch.as_tensor(np.asarray(meta["example_inputs"][spec["name"]], dtype=spec["dtype"]))
                for spec in meta["inputs"]]
        with torch.no_grad():
            got = module(*args).numpy()
    except Exception as err:  # noqa: BLE001 - any failure is the problem to report
        return [f"model.pt/model.json cannot be loaded and run: {type(err).__name__}: {err}"]
    want = np.asarray(meta["example_output"], dtype=meta["output"]["dtype"])
    if meta.get("format") != FORMAT:
        return [f"model.json carries format {meta.get('format')!r}, not {FORMAT!r}"]
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-6, atol=1e-12, equal_nan=True):
        return ["model.pt does not reproduce the example output recorded in model.json"]
    return []
