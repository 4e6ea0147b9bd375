"""Seed replicates in one trial (two-body): each replicate is the trial its seed would train alone,
a diverged one is dropped, resume is bit for bit, and a sweep ranks and shows the means."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.twobody import train_replicates
from trainables.twobody.train import run

TEST = "test/complex_TBP_planar_1/accel_err_mean"
KEYS = ("train_loss", "val_loss", "val_accel_err", "best_val_accel_err", TEST)


def _config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"train_dataset": "complex_TBP_planar_1_train", "test_datasets": ["complex_TBP_planar_1_test"],
            "datasets_root": str(tmp_path.parent / "datasets"), "width": 16, "depth": 2, "batch_size": 8,
            "segment_length": 6, "steps": 6, "report_every": 3, "rollout": False, "grad_clip": 1.0, "seed": 3,
            **extra}


def _singles(tmp_path: Path, config: dict[str, Any], n: int) -> list[dict[str, float]]:
    return [run({**config, "seed": config["seed"] + i}, LocalReporter(tmp_path / f"single{i}", progress=False))
            for i in range(n)]


def test_each_replicate_is_bit_for_bit_its_single_seed_trial_with_rk4(tmp_path: Path) -> None:
    config = _config(tmp_path, solver="rk4")
    together = run({**config, "replicates": 3}, LocalReporter(tmp_path / "together", progress=False))
    singles = _singles(tmp_path, config, 3)
    for key in KEYS:
        assert [together[f"{key}_r{i}"] for i in range(3)] == [s[key] for s in singles], key
        values = [s[key] for s in singles]
        assert together[key] == pytest.approx(sum(values) / 3, rel=1e-12)
        assert together[f"{key}_min"] == min(values) and together[f"{key}_max"] == max(values)
        assert together[f"{key}_std"] == pytest.approx(float(torch.tensor(values, dtype=torch.float64).std(
            unbiased=False)), rel=1e-9)
    assert together["replicates_live"] == 3.0
    assert len({together[f"val_accel_err_r{i}"] for i in range(3)}) == 3  # three different models
    best = min(range(3), key=lambda i: singles[i]["best_val_accel_err"])
    assert together["best_replicate"] == best


def test_adaptive_replicates_meet_the_tolerance_of_their_single_seed_trials(tmp_path: Path) -> None:
    """dopri5 with a shared step (worst replicate's error norm): each replicate's solutions agree
    with its trial alone to the solver's tolerance, not to the last bit; Adam (which divides by the
    gradients' own scale) carries those differences into the weights at about lr x 1e-3 here."""
    config = _config(tmp_path, solver="dopri5", dtype="float64", rtol=1e-10, atol=1e-12)
    together = run({**config, "replicates": 2}, LocalReporter(tmp_path / "together", progress=False))
    for i, single in enumerate(_singles(tmp_path, config, 2)):
        for key in KEYS:
            assert together[f"{key}_r{i}"] == pytest.approx(single[key], rel=1e-5), key
    assert together["nfe_per_step"] > 0


def test_a_diverged_replicate_is_dropped_and_the_others_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, solver="rk4")
    members = train_replicates.init_members

    def poisoned(cfgs: Any, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
        fields = members(cfgs, device, dtype)
        with torch.no_grad():
            fields[1].net[-1].bias.fill_(float("nan"))  # replicate 1 predicts NaN from the first step
        return fields

    monkeypatch.setattr(train_replicates, "init_members", poisoned)
    reporter = LocalReporter(tmp_path / "together", progress=False)
    together = run({**config, "replicates": 3}, reporter)
    assert "replicate 1 (seed 4) diverged at step 0" in capfd.readouterr().err
    assert reporter.tag_values["replicates_dropped"] == "1@0"
    assert together["replicates_live"] == 2.0 and math.isnan(together["val_accel_err_r1"])
    single = _singles(tmp_path, config, 3)
    for key in KEYS:  # the live ones are untouched by their neighbour's NaNs
        assert [together[f"{key}_r{i}"] for i in (0, 2)] == [single[i][key] for i in (0, 2)], key
        assert together[key] == pytest.approx((single[0][key] + single[2][key]) / 2, rel=1e-12)

    def all_poisoned(cfgs: Any, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
        fields = members(cfgs, device, dtype)
        with torch.no_grad():
            for f in fields:
                f.net[-1].bias.fill_(float("nan"))
        return fields

    monkeypatch.setattr(train_replicates, "init_members", all_poisoned)
    with pytest.raises(Exception, match="diverged at step 0: every replicate failed"):
        run({**config, "replicates": 2}, LocalReporter(tmp_path / "all", progress=False))


def test_a_replicate_that_stalls_the_shared_solver_is_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    """A replicate whose field is finite but so fast that the adaptive solver runs out of steps:
    the replicated solve fails, each replicate is integrated alone to find it, it is dropped and
    the step is taken again with the same batches; the others agree with their trials alone."""
    config = _config(tmp_path, solver="dopri5", dtype="float64", rtol=1e-10, atol=1e-12, max_solver_steps=300)
    members = train_replicates.init_members

    def stiff(cfgs: Any, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
        fields = members(cfgs, device, dtype)
        with torch.no_grad():
            fields[0].net[-1].weight.mul_(1e4)
            fields[0].net[-1].bias.mul_(1e4)
        return fields

    monkeypatch.setattr(train_replicates, "init_members", stiff)
    together = run({**config, "replicates": 3}, LocalReporter(tmp_path / "together", progress=False))
    assert "replicate 0 (seed 3) failed at step 0 (solver at step 0: max_num_steps exceeded" in capfd.readouterr().err
    assert together["replicates_live"] == 2.0
    singles = _singles(tmp_path, config, 3)
    for i in (1, 2):
        for key in KEYS:
            assert together[f"{key}_r{i}"] == pytest.approx(singles[i][key], rel=1e-5), key


def test_replicates_without_validation_data_report_nan_and_keep_the_first_replicates_artefacts(
        tmp_path: Path) -> None:
    together = run(_config(tmp_path, solver="rk4", val_dataset=None, replicates=2),
                   LocalReporter(tmp_path / "noval", progress=False))
    assert math.isnan(together["val_accel_err"]) and math.isnan(together["val_accel_err_std"])
    assert together["best_val_accel_err"] == math.inf and math.isnan(together["best_val_accel_err_std"])
    assert together["best_replicate"] == 0.0 and together["replicates_live"] == 2.0
    assert math.isfinite(together[TEST])


def test_evaluate_reproduces_a_replicated_run_and_takes_solvers_training_refuses(tmp_path: Path) -> None:
    from trainables.common.checkpoint import saved_config
    from trainables.twobody.train import evaluate_checkpoint

    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run(_config(tmp_path, replicates=2), reporter)
    config = saved_config(reporter.checkpoint_path)
    again = evaluate_checkpoint(reporter.checkpoint_path, config, [], tmp_path / "eval")
    for key in (TEST, f"{TEST}_r0", f"{TEST}_r1", "best_replicate", "replicates_live"):
        assert again[key] == final[key], key
    other = evaluate_checkpoint(reporter.checkpoint_path, {**config, "solver": "torchdiffeq_dopri5"}, [],
                                tmp_path / "eval2")
    assert other[TEST] == pytest.approx(final[TEST], rel=1e-3)


class _StopAt(LocalReporter):
    """Copies the checkpoint of step ``at`` aside, as a trial killed right after it would have left it."""

    def __init__(self, run_dir: Path, at: int, keep: Path) -> None:
        super().__init__(run_dir, progress=False)
        self.at, self.keep = at, keep

    def report(self, step: int, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        super().report(step, metrics, checkpoint_dir)
        if step == self.at:
            shutil.copytree(self.checkpoint_path, self.keep)


def test_a_resumed_replicated_trial_continues_bit_for_bit(tmp_path: Path) -> None:
    config = _config(tmp_path, replicates=3, steps=9, lr_schedule="cosine", augment="rotate_mirror")
    whole = _StopAt(tmp_path / "whole", 3, tmp_path / "at3")
    final = run(config, whole)
    resumed = LocalReporter(tmp_path / "resumed", resume_from=tmp_path / "at3", progress=False)
    again = run(config, resumed)
    assert [r["step"] for r in resumed.history] == [6, 9]
    clock = ("steps_per_s", "first_step_s", "replicate_steps_per_s")
    assert {k: v for k, v in again.items() if k not in clock} == {k: v for k, v in final.items() if k not in clock}
    saved = torch.load(whole.checkpoint_path / "checkpoint.pt", weights_only=True)
    assert saved["model"]["model.net.0.weight"].shape[0] == 3 and len(saved["best"]) == 3


def test_replicates_are_refused_where_they_cannot_hold(tmp_path: Path) -> None:
    from search.spec import validate

    for extra, key in (({"patience": 2}, "patience"), ({"w_l2": 0.1}, "w_l2"),
                       ({"solver": "torchdiffeq_dopri5"}, "solver")):
        with pytest.raises(ConfigError, match=f"config.{key}: .* not supported with replicates: 2"):
            run(_config(tmp_path, replicates=2, **extra), LocalReporter(tmp_path / "x", progress=False))
    spec = {"name": "r", "family": "pendulum", "replicates": 3, "base": {},
            "search": {"algorithm": "random", "metric": "val_loss", "mode": "min", "num_samples": 1}}
    with pytest.raises(ConfigError, match="sweep.yaml: replicates: family 'pendulum' does not train seed replicates"
                                          ".*families that do: twobody"):
        validate(spec, "sweep.yaml")
    with pytest.raises(ConfigError, match="replicates: 0 must be an integer >= 1"):
        validate({**spec, "family": "twobody", "replicates": 0}, "sweep.yaml")
    ok = validate({**spec, "family": "twobody", "replicates": 2, "base": {"steps": 6},
                   "search": {**spec["search"], "metric": "val_accel_err_std"}}, "sweep.yaml")
    assert ok.base["replicates"] == 2
