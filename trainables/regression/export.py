"""The regression model for export: inputs in the table's units -> outputs in the table's units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.common.export import export_torchscript

from .model import RegressionMLP


class Predict(nn.Module):
    """``(N, n_inputs)`` float64 -> ``(N, n_outputs)`` float32: :meth:`RegressionMLP.predict`
    (the training normalisation is inside the model)."""

    def __init__(self, model: RegressionMLP) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.predict(inputs)


def export_model(model: RegressionMLP, example: np.ndarray, inputs: list[str], outputs: list[str], dataset: str,
                 folder: Path) -> Path:
    """``model.pt`` + ``model.json`` in ``folder``; ``example`` ``(n, n_inputs)`` rows of the table."""
    return export_torchscript(Predict(model), {"inputs": np.asarray(example, dtype=np.float64)}, folder, {
        "family": "regression",
        "description": f"Regression MLP trained on {dataset}: inputs (N, {len(inputs)}) = columns "
                       f"{', '.join(inputs)} -> outputs (N, {len(outputs)}) = columns {', '.join(outputs)}, "
                       "both in the table's own units (the normalisation is inside the model).",
        "inputs": {"inputs": {"units": "the table's units", "columns": list(inputs)}},
        "output": {"name": "outputs", "units": "the table's units", "columns": list(outputs)}})
