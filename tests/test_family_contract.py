"""The family contract (docs/families.md), checked for every registered family by one test.

Each family runs through ``python -m trainables.contract`` in a fresh interpreter: its smoke
config trains through a local reporter, every declared metric is reported, only declared tags,
Ray and MLflow are never imported, the same config twice and a run interrupted then resumed from
its checkpoint give the same final metrics, bad config keys and types are one-line errors
naming the key, and every declared artefact carries its format in its Parquet footer. A family
that breaks the contract fails here, with a message naming the hook.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainables.common.config import FamilyConfig
from trainables.contract import check_record, check_run
from trainables.dummy.family import DummyConfig
from trainables.registry import FAMILIES, Family

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_keeps_the_contract(name: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "trainables.contract", name, "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert json.loads(proc.stdout) == []


@dataclasses.dataclass(frozen=True)
class NoMetricsConfig(FamilyConfig):
    """A config that forgot to declare its metrics."""

    steps: int = 2


def _forgetful_run(config: dict, reporter: object) -> dict:
    """Reports ``loss`` but not the ``accuracy`` its config declares, and an undeclared tag."""
    reporter.tags({"secret": "x"})                              # type: ignore[attr-defined]
    reporter.report(1, {"loss": 1.0})                           # type: ignore[attr-defined]
    return {"loss": 1.0}


@dataclasses.dataclass(frozen=True)
class DeclaresAccuracy(DummyConfig):
    def metric_names(self) -> set[str]:
        return {"loss", "accuracy"}


def test_a_record_missing_hooks_is_refused_naming_them() -> None:
    broken = Family(run="trainables.dummy.family:no_such_function", config="trainables.dummy.family:DummyConfig")
    problems = check_record("broken", broken)
    assert len(problems) == 1 and "hook run" in problems[0] and "no_such_function" in problems[0]
    problems = check_record("broken", Family(run="trainables.dummy.family:run", config=NoMetricsConfig))
    assert any("hook metric_names" in p for p in problems), problems
    assert any("hook smoke" in p for p in problems), problems


def test_a_family_that_does_not_report_what_it_declares_fails(tmp_path: Path) -> None:
    broken = Family(run=_forgetful_run, config=DeclaresAccuracy, smoke={"steps": 2})
    assert check_record("broken", broken) == []
    problems = check_run("broken", broken, tmp_path)
    assert any("never reported: accuracy" in p for p in problems), problems
    assert any("not declared in the record's tags: secret" in p for p in problems), problems
    assert any("no checkpoint" in p for p in problems), problems


def test_a_family_whose_resume_differs_fails(tmp_path: Path) -> None:
    """The dummy restarted from a checkpoint but counting its steps anew ends elsewhere."""
    from trainables.dummy import family as dummy

    def forgets_its_step(config: dict, reporter: object) -> dict:
        reporter.restore_dir = lambda: None                     # type: ignore[attr-defined]
        return dummy.run({**config, "extra": 0.5 if reporter.run_dir.name.endswith("-2") else 0.0}, reporter)

    broken = Family(run=forgets_its_step, config=DummyConfig, smoke={"steps": 4, "checkpoint_every": 2},
                    clock_metrics=("t_start", "t_now"))
    problems = check_run("broken", broken, tmp_path)
    assert any("resumed from its checkpoint" in p for p in problems), problems


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_says_how_long_its_trials_are(name: str) -> None:
    """``trial_length`` (the ASHA ``max_t`` warning) gives whole reports and steps for the smoke config."""
    from trainables.registry import family_config, family_trial_length

    length_of = family_trial_length(name)
    assert length_of is not None, f"{name}: the record has no trial_length hook"
    length = length_of(family_config(name).from_dict(FAMILIES[name].smoke))
    assert length is not None and set(length) == {"training_iteration", "step"}, length
    assert 1 <= length["training_iteration"] <= length["step"], length


@pytest.mark.parametrize("name", sorted(n for n, fam in FAMILIES.items() if fam.dataset_paths))
def test_dataset_paths_hook_names_paths_without_creating_them(name: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``dataset_paths`` (validation's corrupt-dataset check) returns Paths for the smoke config
    and creates nothing, whether the root comes from the config or from ``$DYNSWEEP_DATASETS``."""
    from trainables.registry import family_config, family_dataset_paths

    root = tmp_path / "datasets"
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(root))
    monkeypatch.chdir(tmp_path)
    smoke = dict(FAMILIES[name].smoke)
    configs = [smoke]
    if "datasets_root" in family_config(name).from_dict(smoke).to_dict():
        configs.append({**smoke, "datasets_root": str(tmp_path / "other")})
    for config in configs:
        paths = family_dataset_paths(name, config)
        assert paths and all(isinstance(p, Path) for p in paths), f"{name}: dataset_paths returned {paths!r}"
    assert list(tmp_path.iterdir()) == [], f"{name}: dataset_paths created {sorted(tmp_path.rglob('*'))}"


@pytest.mark.parametrize("steps,every", [(10, 3), (4, 1), (6, 6), (5, 10)])
def test_trial_length_counts_the_reports_a_trial_makes(steps: int, every: int, tmp_path: Path) -> None:
    from trainables.common.reporter import LocalReporter
    from trainables.dummy.family import run
    from trainables.registry import length_in_steps

    reporter = LocalReporter(tmp_path, progress=False)
    config = {"steps": steps, "report_every": every, "checkpoint_every": 1}
    run(config, reporter)
    steps_reported = [int(r["step"]) for r in reporter.history]
    assert length_in_steps(DummyConfig.from_dict(config)) == {"training_iteration": len(steps_reported),
                                                              "step": steps_reported[-1]}


def test_trial_length_of_phases_and_epochs() -> None:
    from trainables.registry import length_in_epochs, length_in_steps
    from trainables.timestepper.config import StepperConfig
    from trainables.twobody.config import TwoBodyConfig

    phases = TwoBodyConfig.from_dict({"report_every": 4, "steps": 100, "phases": [{"steps": 5}, {"lr": 1e-4}]})
    assert length_in_steps(phases) == {"training_iteration": 28, "step": 105}  # 26 by 4, step 5, step 105
    epochs = TwoBodyConfig.from_dict({"phases": [{"steps": 5}, {"epochs": 2.0}]})
    assert length_in_steps(epochs) is None  # known only once the data is
    assert length_in_epochs(StepperConfig.from_dict({"epochs": 6, "report_every": 4})) == {
        "training_iteration": 2, "step": 6}


def test_trial_length_counts_what_a_curriculum_really_reports(tmp_path: Path) -> None:
    """A phase that ends between two reports is reported at its end (its best model goes on)."""
    from trainables.common.reporter import LocalReporter
    from trainables.registry import FAMILIES, length_in_steps
    from trainables.twobody.config import TwoBodyConfig
    from trainables.twobody.train import run

    cfg = {**FAMILIES["twobody"].smoke, "datasets_root": str(tmp_path / "data"), "report_every": 4,
           "phases": [{"steps": 5}, {"steps": 7}]}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run(cfg, reporter)
    assert [r["step"] for r in reporter.history] == [4, 5, 8, 12]
    assert length_in_steps(TwoBodyConfig.from_dict(cfg)) == {"training_iteration": 4, "step": 12}


def test_local_training_shows_progress_lines_in_a_batch_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dynsweep train` in a batch job (stderr not a terminal): a timestamped progress line at the
    first report, then at most one per `progress_every_s`, and one at the last step."""
    from trainables.common.reporter import LocalReporter

    reporter = LocalReporter(tmp_path, progress_every_s=3600.0)
    for step in range(1, 11):
        reporter.report(step, {"total_steps": 10, "train_loss": 1.0 / step, "val_loss": 2.0 / step})
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 2 and "progress: 1/10 loss 1 val 2" in lines[0] and "progress: 10/10 loss 0.1" in lines[1]
    assert "\r" not in "".join(lines)                                    # no bar redrawn in a log file
    other = LocalReporter(tmp_path / "other", progress_every_s=3600.0)    # a family without val_loss
    other.report(1, {"total_steps": 2, "train_loss": 0.5, "val_pixel_mse": 0.25})
    assert "progress: 1/2 loss 0.5 val_pixel_mse 0.25 " in capsys.readouterr().err
