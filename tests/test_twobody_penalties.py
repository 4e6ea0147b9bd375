"""The two-body loss's physics penalty terms: hand-computed values on small cases, and each term
reported on its own while training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.twobody.config import TwoBodyConfig
from trainables.twobody.penalties import attraction, energy, penalties, penalty_weights, sign_flip
from trainables.twobody.train import run


class _Field(torch.nn.Module):
    """A field whose acceleration is ``fn(y)``; one parameter (2.0, -1.0) for the weight terms."""

    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn
        self.w = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))

    def acceleration(self, y: torch.Tensor) -> torch.Tensor:
        return self.fn(y)


def _segment(n: int = 4) -> torch.Tensor:
    """One circular-orbit segment (r = 1, v = 1), ``(1, n, 6)``."""
    th = torch.linspace(0.0, 0.6, n, dtype=torch.float64)
    z = torch.zeros_like(th)
    return torch.stack([torch.cos(th), torch.sin(th), z, -torch.sin(th), torch.cos(th), z], -1)[None]


def _r_hat(y: torch.Tensor) -> torch.Tensor:
    return y[..., :3] / torch.linalg.vector_norm(y[..., :3], dim=-1, keepdim=True)


def test_attraction_is_the_outward_percent() -> None:
    seg = _segment()
    assert attraction(_Field(lambda y: -_r_hat(y)), seg).item() == 0.0
    assert attraction(_Field(lambda y: _r_hat(y)), seg).item() == pytest.approx(100.0)
    t_hat = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    half = attraction(_Field(lambda y: (_r_hat(y) + t_hat) / math.sqrt(2)), seg).item()
    assert half == pytest.approx(100 / math.sqrt(2))            # 45 degrees outward: cos 45


def test_sign_flip_counts_reversals_between_samples() -> None:
    seg = _segment(5)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)[None, :, None]
    assert sign_flip(_Field(lambda y: -_r_hat(y)), seg).item() == pytest.approx(0.0, abs=1e-12)
    flips = sign_flip(_Field(lambda y: -_r_hat(y) * sign.expand(*y.shape[:-1], 1)), seg).item()
    assert flips == pytest.approx(100.0 * math.cos(0.15))       # every pair reverses: -cos of the 0.15 rad apart


def test_energy_drift_of_a_predicted_segment() -> None:
    assert energy(_segment()).item() == pytest.approx(0.0, abs=1e-10)   # a circular orbit keeps E = -1/2
    pred = torch.tensor([[[1.0, 0, 0, 0, 1.0, 0], [2.0, 0, 0, 0, 1.0, 0]]], dtype=torch.float64)
    assert energy(pred).item() == pytest.approx(100.0)                  # E: -1/2 -> 0, |dE| / |E0| = 1


def test_weights_and_the_loss_with_attraction() -> None:
    cfg = TwoBodyConfig(loss="percent_error_with_attraction", w_attraction=0.5, w_l1=0.1, w_l2=0.2)
    assert penalty_weights(cfg) == {"attraction": 1.5, "l1": 0.1, "l2": 0.2}
    field = _Field(lambda y: _r_hat(y))
    total, values = penalties(field, _segment(), _segment(), penalty_weights(cfg))
    assert values == pytest.approx({"loss_attraction": 100.0, "loss_l1": 1.5, "loss_l2": 2.5})
    assert total.item() == pytest.approx(1.5 * 100 + 0.1 * 1.5 + 0.2 * 2.5)
    assert penalty_weights(TwoBodyConfig()) == {}
    with pytest.raises(ConfigError, match="config.w_energy: -1.0 must be >= 0"):
        TwoBodyConfig(w_energy=-1.0)


def test_each_term_is_reported_while_training(tmp_path: Path) -> None:
    cfg = {"train_dataset": "complex_TBP_planar_1_train", "test_datasets": ["complex_TBP_planar_1_test"],
           "datasets_root": str(tmp_path / "data"), "width": 8, "segment_length": 10, "batch_size": 16,
           "steps": 6, "report_every": 3, "loss": "percent_error_with_attraction", "w_sign_flip": 0.1,
           "w_l2": 1.0, "w_energy": 0.5}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run(cfg, reporter)
    names = TwoBodyConfig.from_dict(cfg).metric_names()
    for row in reporter.history:
        terms = {"loss_base", "loss_attraction", "loss_sign_flip", "loss_l2", "loss_energy"}
        assert terms <= set(row) and terms <= names and "loss_l1" not in row
        total = row["loss_base"] + row["loss_attraction"] + 0.1 * row["loss_sign_flip"] + row["loss_l2"] \
            + 0.5 * row["loss_energy"]
        assert row["train_loss"] == pytest.approx(total, rel=1e-5)
        assert row["loss_attraction"] >= 0 and row["loss_energy"] > 0
