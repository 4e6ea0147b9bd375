"""The best-on-validation model and patience-based early stopping (trainables/common/best.py),
in every family that validates: the rule on a hand-made sequence, then real training runs whose
reported validation values must show the stop exactly where the rule says and the best step at
their minimum."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel
from trainables.common.errors import ConfigError
from trainables.common.lr import scheduled_lr
from trainables.common.reporter import LocalReporter
from trainables.registry import FAMILIES, family_config, family_run


def test_the_patience_rule_on_a_hand_made_sequence() -> None:
    model = torch.nn.Linear(1, 1)
    best = BestModel(patience=2)
    seen = []
    for step, value in zip((10, 20, 30, 40, 50), (1.0, 0.5, 0.7, 0.6, 0.4)):
        with torch.no_grad():
            model.weight.fill_(value)
        best.observe(value, step, model)
        seen.append((step, best.stop))
        if best.stop:
            break
    # 0.7 and 0.6 are both worse than 0.5: the second of them ends training
    assert seen == [(10, False), (20, False), (30, False), (40, True)]
    assert (best.best_val, best.best_step) == (0.5, 20)
    best.restore(model)
    assert model.weight.item() == 0.5
    again = BestModel.from_state(2, best.state())
    assert (again.best_val, again.best_step, again.bad_reports, again.stop) == (0.5, 20, 2, True)
    assert BestModel(patience=0).patience == 0 and not BestModel(0, bad_reports=99).stop


def test_without_validation_the_latest_model_is_kept() -> None:
    model = torch.nn.Linear(1, 1)
    best = BestModel(patience=1)
    for step in (5, 10, 15):
        assert best.observe(math.nan, step, model)
    assert best.best_step == 15 and not best.stop


def test_a_nan_after_a_finite_value_never_becomes_the_best() -> None:
    model = torch.nn.Linear(1, 1)
    best = BestModel(patience=3)
    assert best.observe(0.5, 10, model)
    assert not best.observe(math.nan, 20, model)            # a diverging validation: no improvement
    assert best.observe(0.4, 30, model)                     # and a later finite value still counts
    assert (best.best_val, best.best_step, best.bad_reports) == (0.4, 30, 0)


def test_older_checkpoints_resume() -> None:
    assert BestModel.from_state(2, 0.37).best_val == 0.37  # regression kept a plain value
    weights = {"weight": torch.ones(1, 1), "bias": torch.zeros(1)}
    old_pendulum = {"best_val": 0.2, "best_step": 40, "bad_reports": 1, "best_model": weights, "stream": None}
    best = BestModel.from_state(10, old_pendulum)
    assert (best.best_val, best.best_step, best.bad_reports) == (0.2, 40, 1) and best.weights is weights


def test_cosine_schedule_ends_at_min_lr() -> None:
    assert scheduled_lr("cosine", 1e-2, 1e-4, 0.0) == pytest.approx(1e-2)
    assert scheduled_lr("cosine", 1e-2, 1e-4, 0.5) == pytest.approx((1e-2 + 1e-4) / 2)
    assert scheduled_lr("cosine", 1e-2, 1e-4, 1.0) == pytest.approx(1e-4)
    assert scheduled_lr("constant", 1e-2, 1e-4, 0.7) == 1e-2


@pytest.mark.parametrize("family", ["pendulum", "regression", "twobody", "worldmodels", "visual"])
def test_bad_patience_and_min_lr_are_refused(family: str) -> None:
    cls = family_config(family)
    with pytest.raises(ConfigError, match="config.patience"):
        cls.from_dict({"patience": -1})
    with pytest.raises(ConfigError, match="config.min_lr"):
        cls.from_dict({"min_lr": 1.0})


# family -> (validation metric the rule watches, overrides that train long enough to stop early)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "twobody": ("val_accel_err", {"steps": 60, "report_every": 3, "lr": 0.05}),
    "worldmodels": ("val_loss", {"steps": 80, "report_every": 4, "lr": 0.05}),
    "regression": ("val_loss", {"steps": 120, "report_every": 4, "lr": 0.05}),
    "pendulum": ("val_loss", {"steps": 60, "report_every": 3, "lr": 0.05}),
    "visual": ("val_pixel_mse", {"steps": 60, "report_every": 3, "lr": 0.05}),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_early_stopping_stops_where_the_rule_says_and_the_best_model_is_checkpointed(
        family: str, tmp_path: Path) -> None:
    metric, overrides = CASES[family]
    config = {**FAMILIES[family].smoke, **overrides, "patience": 2}
    if "datasets_root" in {f.name for f in dataclasses.fields(family_config(family))}:
        config["datasets_root"] = str(tmp_path / "datasets")
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = family_run(family)(config, reporter)
    values = [(row["step"], row[metric]) for row in reporter.history]

    # replay the rule on the reported values
    best_val, best_step, bad, stop_at = math.inf, 0, 0, None
    for step, value in values:
        if value < best_val:
            best_val, best_step, bad = value, step, 0
        else:
            bad += 1
        if bad >= 2:
            stop_at = step
            break
    assert stop_at is not None, f"{family}: no stop in {values}; give the case more steps"
    last = reporter.history[-1]
    assert last["step"] == stop_at < config["steps"]
    assert last["stopped_early"] == 1.0 and last["best_step"] == best_step
    assert last[f"best_{metric}"] == pytest.approx(best_val)
    assert final == {k: v for k, v in last.items() if k != "step"}

    # the final checkpoint holds the best model (the one the last report's test metrics describe), and
    # says training is over (a resume from it trains no further)
    saved = checkpoint.load(reporter.checkpoint_path)
    assert saved["step"] == config["steps"]
    for name, tensor in saved["best"]["weights"].items():
        assert torch.equal(saved["model"][name], tensor), name
    again = LocalReporter(tmp_path / "again", resume_from=reporter.checkpoint_path, progress=False)
    family_run(family)(config, again)
    assert again.history == []


def test_evaluate_uses_the_best_weights_of_a_checkpoint_saved_mid_training(tmp_path: Path) -> None:
    """A trial ASHA stopped (or one interrupted) saved its latest weights as ``model``; evaluation
    uses the best-on-validation ones it carries."""
    from trainables.common.best import load_evaluated

    model, other = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    best = BestModel(patience=0)
    best.observe(0.1, 5, model)
    with torch.no_grad():
        model.weight.add_(1.0)                               # trained on, got worse
    checkpoint.save_training(tmp_path, 9, {"model": model}, {}, best=best.state())
    load_evaluated(tmp_path, other)
    assert torch.equal(other.weight, best.weights["weight"]) and not torch.equal(other.weight, model.weight)
