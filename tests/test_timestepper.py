"""The learned time-stepper: N-body physics, features, band loss, the retry cap, zero masses, the
comparison with both baselines on eccentric orbits, and a sweep on Ray + MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli import main
from trainables.common.errors import TrialFailure
from trainables.common.reporter import LocalReporter
from trainables.timestepper.features import History, analytic
from trainables.timestepper.nbody import (
    energy,
    hierarchical_triple,
    kepler_pair,
    verlet,
)
from trainables.timestepper.stepper import band_loss, integrate_fixed, integrate_r32
from trainables.timestepper.train import RetryCapError, run


def test_kepler_orbit_closes_and_verlet_error_scales_like_dt_squared() -> None:
    system = kepler_pair(0.5)
    q, v, m = system.q.copy(), system.v.copy(), system.m
    n = 4000
    for _ in range(n):
        q, v = verlet(q, v, m, system.period / n)
    assert np.abs(q - system.q).max() < 1e-3                      # back where it started after one period
    coarse, fine = integrate_fixed(system, 1.0, system.period / 500), integrate_fixed(system, 1.0, system.period / 1000)
    assert 3.5 < coarse.energy_error / fine.energy_error < 4.5     # second order
    assert integrate_r32(system, 1.0, 0.05).steps_per_orbit < coarse.steps_per_orbit


def test_zero_mass_body_gives_finite_features_energy_and_history() -> None:
    system = hierarchical_triple(0.5, m3=0.0)
    q, v, m = (torch.as_tensor(a, dtype=torch.float64) for a in (system.q, system.v, system.m))
    row = analytic(q, v, m)
    assert row.shape == (12,) and torch.isfinite(row).all()
    history = History(4, 12)
    x = history.with_current(row)
    assert x.shape == (48,) and (x[:36] == 0).all() and torch.isfinite(x).all()     # zero-padded start
    assert math.isfinite(float(energy(q, v, m)))
    q1, v1 = verlet(q, v, m, 1e-3)
    assert torch.isfinite(q1).all() and torch.isfinite(v1).all()


def test_band_loss_is_zero_inside_the_band_and_pushes_outside() -> None:
    log_dt = torch.zeros(3, requires_grad=True)
    err = torch.tensor([1e-3, 1e-4, 1e-7])                       # above, inside, below [2e-5, 2e-4]
    loss = band_loss(log_dt, err, 2e-4, 0.1)
    (grad,) = torch.autograd.grad(loss, log_dt)
    assert grad[0] > 0 and grad[1] == 0 and grad[2] < 0          # descent: dt down, unchanged, dt up
    assert float(band_loss(log_dt, torch.tensor([1e-4, 5e-5, 1.5e-4]), 2e-4, 0.1).detach()) == 0.0


def test_retry_cap_ends_the_trial_with_a_classified_failure(tmp_path: Path) -> None:
    with pytest.raises(RetryCapError) as info:
        run({"e": 0.9, "dt_init": 0.3, "max_retries": 2, "energy_threshold": 1e-8, "lr": 1e-6, "epochs": 1},
            LocalReporter(tmp_path, progress=False))
    assert isinstance(info.value, TrialFailure) and info.value.failure_class == "retry_cap"
    assert "after 2 retrainings" in str(info.value)


def test_history_features_with_a_zero_mass_body_train_without_nan(tmp_path: Path) -> None:
    reporter = LocalReporter(tmp_path, progress=False)
    final = run({"system": "triple", "m3": 0.0, "e": 0.5, "features": "history", "history_len": 3, "epochs": 2,
                 "collect_steps": 60, "eval_orbits": 0.5, "phase2_max_iters": 50}, reporter)
    assert [r["step"] for r in reporter.history] == [1, 2]
    assert all(math.isfinite(v) for k, v in final.items() if isinstance(v, float) and k != "test/r32_eta")


@pytest.mark.parametrize("e", [0.5, 0.9])
def test_learned_stepper_needs_fewer_steps_than_fixed_dt_at_equal_energy_error(tmp_path: Path, e: float) -> None:
    final = run({"e": e, "epochs": 4, "collect_steps": 200, "eval_orbits": 1.0, "phase2_max_iters": 200},
                LocalReporter(tmp_path, progress=False))
    for baseline in ("fixed", "r32"):   # both baselines were tuned to the learned stepper's energy error (5 %)
        assert abs(math.log(final[f"test/{baseline}_energy_error"] / final["test/energy_error"])) < math.log(1.06)
    assert final["test/steps_ratio_fixed"] < 1.0, final
    assert final["test/steps_per_orbit"] < final["test/fixed_steps_per_orbit"]
    assert math.isfinite(final["test/steps_ratio_r32"]) and final["acceptance_rate"] > 0.5


def test_timestepper_sweep_end_to_end_with_mlflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from search.tracking import default_tracking_uri

    sets = ["base.e=0.5", "base.epochs=2", "base.collect_steps=40", "base.eval_orbits=0.5", "base.phase2_max_iters=30",
            "search.num_samples=2", f"storage={tmp_path / 'runs'}"]
    code = main(["launch", "search_spaces/timestepper.yaml", "--num-cpus", "2", *[a for s in sets for a in ("--set", s)]])
    assert code == 0, capsys.readouterr().err[-3000:]
    client = MlflowClient(default_tracking_uri(tmp_path / "runs" / "timestepper"))
    exp = client.get_experiment_by_name("timestepper")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "acceptance_rate")] == [1, 2]
        assert r.data.metrics["test/steps_per_orbit"] > 0 and r.data.metrics["test/fixed_steps_per_orbit"] > 0


def test_phase2_minibatches_with_and_without_replacement() -> None:
    from trainables.timestepper.train import minibatches

    rng = torch.Generator().manual_seed(0)
    batches = minibatches(10, 4, rng, "without_replacement")
    seen = torch.cat([next(batches) for _ in range(5)])                     # 20 draws = two whole passes
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert len(next(minibatches(3, 8, rng, "without_replacement"))) == 3   # never a state twice in one batch
    drawn = next(minibatches(10, 64, rng, "with_replacement"))
    assert len(drawn) == 64 and len(set(drawn.tolist())) <= 10


def test_without_a_retry_cap_training_goes_on_and_epochs_report_convergence(tmp_path: Path) -> None:
    hard = {"e": 0.5, "dt_init": 0.05, "epochs": 1, "collect_steps": 40, "eval_orbits": 0.3, "phase2_max_iters": 50,
            "max_retries": 1}
    with pytest.raises(RetryCapError):
        run(hard, LocalReporter(tmp_path / "capped", progress=False))
    reporter = LocalReporter(tmp_path / "free", progress=False)
    final = run({**hard, "max_retries": None, "phase2_sampling": "without_replacement"}, reporter)
    assert final["retrain_iterations"] > 1 and final["accepted_steps"] == 40
    assert final["converged"] in (0.0, 1.0) and final["epoch_s"] > 0
    assert (final["converged"] == 1.0) == (final["phase2_iterations"] < 50)
