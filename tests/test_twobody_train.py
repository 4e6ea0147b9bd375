"""Training the two-body family without Ray: resume exactness, failures, reports and artefacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from trainables.common.errors import DivergedError, TrialFailure
from trainables.common.reporter import LocalReporter
from trainables.twobody.artifacts import PER_POINT
from trainables.twobody.train import run


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


def _tiny(root: Path, **changes: Any) -> dict[str, Any]:
    cfg = {"datasets_root": str(root), "train_dataset": "complex_TBP_planar_2_train",
           "test_datasets": ["complex_TBP_planar_2_test"], "width": 16, "depth": 2, "segment_length": 10,
           "batch_size": 16, "steps": 40, "report_every": 20, "rollout": False}
    cfg.update(changes)
    return cfg


def test_resume_repeats_an_uninterrupted_run_bit_for_bit(root: Path, tmp_path: Path) -> None:
    cfg = _tiny(root, steps=200, report_every=100, augment="rotate_mirror")   # augmentation draws resume too
    torch.set_num_threads(1)
    straight = LocalReporter(tmp_path / "straight", progress=False)
    run(cfg, straight)

    first = LocalReporter(tmp_path / "first", progress=False)
    run({**cfg, "steps": 100}, first)   # a run that stops at step 100 (its checkpoint is the interruption)
    second = LocalReporter(tmp_path / "second", resume_from=first.checkpoint_path, progress=False)
    run(cfg, second)

    assert [r["step"] for r in second.history] == [200]
    assert second.history[-1]["train_loss"] == straight.history[-1]["train_loss"]
    assert second.history[-1]["val_loss"] == straight.history[-1]["val_loss"]
    assert first.history[-1]["train_loss"] == straight.history[0]["train_loss"]
    a = torch.load(straight.checkpoint_path / "checkpoint.pt", weights_only=True)
    b = torch.load(second.checkpoint_path / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    metrics = [k for k in straight.history[-1] if k.startswith("test/")]
    assert metrics and all(straight.history[-1][k] == second.history[-1][k] for k in metrics
                           if straight.history[-1][k] == straight.history[-1][k])


def test_reports_metrics_and_writes_per_point_errors(root: Path, tmp_path: Path) -> None:
    rep = LocalReporter(tmp_path, progress=False)
    final = run(_tiny(root, rollout=True, phases=[{"steps": 20, "orbit_fraction": [0, 0.5]}, {"epochs": 4}],
                      eval_every_reports=1), rep)
    assert [r["step"] for r in rep.history] == [20, 40]   # phase 2: 4 epochs x ceil(2 orbits x 36 segments / 16)
    assert [r["phase"] for r in rep.history] == [0, 1]
    for key in ("train_loss", "val_loss", "val_accel_err", "steps_per_s", "nfe_per_step", "epoch", "lr",
                "first_step_s"):
        assert rep.history[-1][key] == rep.history[-1][key], key   # present and not NaN
    prefix = "test/complex_TBP_planar_2/"
    for name in ("accel_err_mean", "accel_err_median", "accel_err_std", "accel_err_skew", "accel_err_pearson_sk1",
                 "accel_err_pearson_sk2", "accel_err_bowley", "theta_deg", "radial_pct", "loglog_slope_in",
                 "rollout_pos_err_pct", "rollout_energy_drift"):
        assert prefix + name in final, name
    assert prefix + "accel_err_mean" in rep.history[0]          # evaluated every report too
    assert 0 < final[prefix + "accel_err_mean"] < 1000
    points = pl.read_parquet(tmp_path / "artifacts" / PER_POINT.file)
    assert points.height == 2 * 360 and set(points["dataset"]) == {"complex_TBP_planar_2"}
    assert points["accel_err_pct"].mean() == pytest.approx(final[prefix + "accel_err_mean"])


def test_a_diverging_config_raises_the_diverged_class_quickly(root: Path, tmp_path: Path) -> None:
    rep = LocalReporter(tmp_path, progress=False)
    with pytest.raises(DivergedError) as info:
        run(_tiny(root, head="mlp_4D_logmag_exp", lr=1e4, steps=50, solver="rk4"), rep)
    assert info.value.failure_class == "diverged" and info.value.step is not None and info.value.step < 50


def test_an_adaptive_solver_blow_up_is_a_classified_failure(root: Path, tmp_path: Path) -> None:
    with pytest.raises(TrialFailure) as info:
        run(_tiny(root, head="mlp_4D_logmag_exp", lr=1e4, steps=50, max_solver_steps=200),
            LocalReporter(tmp_path, progress=False))
    assert info.value.failure_class in ("diverged", "solver") and info.value.step < 50


@pytest.mark.parametrize("changes", [{"adjoint": True}, {"solver": "torchdiffeq_dopri5", "grad_clip": 1.0},
                                     {"solver": "rk4", "lr_schedule": "cosine", "augment": "rotate"}])
def test_other_solvers_and_options_train(root: Path, tmp_path: Path, changes: dict) -> None:
    rep = LocalReporter(tmp_path, progress=False)
    final = run(_tiny(root, steps=6, report_every=3, **changes), rep)
    losses = [r["train_loss"] for r in rep.history]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert final["test/complex_TBP_planar_2/accel_err_mean"] > 0
    if changes.get("lr_schedule") == "cosine":
        assert rep.history[0]["lr"] < 1e-3   # decayed inside the phase


def test_val_accel_err_is_the_mean_acceleration_error_on_the_validation_orbits(root: Path) -> None:
    """0 % for the true field, 100 % for a field that predicts no acceleration at all."""
    from trainables.twobody.config import TwoBodyConfig
    from trainables.twobody.data import TrainingData
    from trainables.twobody.loop import val_accel_err as _val_accel_err

    data = TrainingData.load(TwoBodyConfig.from_dict(_tiny(root)))
    assert data.val is not None and data.val.n_orbits == 2

    class Field(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(scale, dtype=torch.float64))

        def acceleration(self, y: torch.Tensor) -> torch.Tensor:
            r = y[..., :3]
            return -self.scale * r / torch.linalg.vector_norm(r, dim=-1, keepdim=True) ** 3

    assert _val_accel_err(Field(1.0), data.val) == pytest.approx(0.0, abs=1e-9)
    assert _val_accel_err(Field(0.0), data.val) == pytest.approx(100.0)
    assert _val_accel_err(Field(1.1), data.val) == pytest.approx(10.0)


def test_an_invariant_model_has_no_invariance_gap_after_training(root: Path, tmp_path: Path) -> None:
    """Trained on counter-clockwise orbits with perigee on +x, an invariant model (features
    inv_rinv_vrvt, head rt) has the same error on the rotated and mirrored test sets as on the
    base set: the gap is 1 to float32 precision, reported per turned set."""
    tests = ["complex_TBP_planar_2_test", "complex_TBP_planar_rotated_2_test", "complex_TBP_planar_mirrored_2_test"]
    final = run(_tiny(root, feature="inv_rinv_vrvt", head="rt", test_datasets=tests),
                LocalReporter(tmp_path, progress=False))
    base = final["test/complex_TBP_planar_2/accel_err_mean"]
    for turned in ("rotated", "mirrored"):
        label = f"complex_TBP_planar_{turned}_2"
        assert final[f"test/{label}/accel_err_mean"] == pytest.approx(base, rel=1e-4)
        assert final[f"test/{label}/invariance_gap"] == pytest.approx(1.0, abs=1e-4)
    assert "test/complex_TBP_planar_2/invariance_gap" not in final           # a base set has none
