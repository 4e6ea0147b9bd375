"""Plot kinds of the pendulum and time-stepper families over tiny real sweeps (real Ray, real
MLflow): every kind that applies draws a PNG of exactly its declared size that is not blank and is
logged to the sweep's parent run; every other kind is refused in one line naming those that apply."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from analysis.kinds import KINDS
from search.cli import main
from trainables.registry import FAMILIES

from plotcheck import assert_plot  # tests/plotcheck.py

PENDULUM_TINY = {"sims": 10, "t_end": 3.0, "steps": 40, "report_every": 20, "hidden": 16, "layers": 1, "window": 8,
                 "batch_size": 64, "horizons": [5, 50], "lyapunov_t_end": 1.0, "eval_sims": 2, "val_windows": 256}

SWEEPS = {
    "pendulum": ("search_spaces/pendulum_rnn.yaml", "pendulum_rnn",
                 [f"base.{k}={json.dumps(v)}" for k, v in PENDULUM_TINY.items()]
                 + ["search.num_samples=3", "scheduler.grace_period=40", "scheduler.max_t=40",   # ASHA stops none
                    "space.rnn={choice: [lstm, gru]}", "space.hidden={choice: [8, 16]}", "space.window={choice: [4, 8]}",
                    "search.points_to_evaluate=[{rnn: lstm, hidden: 8}, {rnn: gru, hidden: 16}]"]),   # both cells
    "timestepper": ("search_spaces/timestepper.yaml", "timestepper",
                    ["base.e=0.5", "base.epochs=2", "base.collect_steps=40", "base.eval_orbits=0.5",
                     "base.phase2_max_iters=30", "search.num_samples=3",
                     "search.points_to_evaluate=[{features: analytic, width: 16}, {features: history, width: 32}]"]),
}
EXTRA = {   # per family and kind: the CLI arguments a user would give
    "pendulum": {"box": ["--metric", "test/vpt_lyapunov", "--mode", "max", "--x", "rnn"],
                 "heatmap": ["--x", "rnn", "--y", "hidden"]},
    "timestepper": {"box": ["--x", "features"], "heatmap": ["--x", "features", "--y", "width"],
                    "curves": ["--curve-metric", "band_loss"]},
}


def _launch(family: str, root: Path) -> Path:
    yaml_path, name, sets = SWEEPS[family]
    sets = [*sets, f"storage={root / 'runs'}"]
    code = main(["launch", yaml_path, "--num-cpus", "2", *[a for s in sets for a in ("--set", s)]])
    assert code == 0, f"{family} sweep failed"
    return root / "runs" / name


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One tiny sweep per family, launched on first use (a test of one family pays for its own)."""
    # a long folder name: Ray's temp folder then goes to /tmp/dynsweep-ray-* (search.runtime.ray_temp_dir
    # keeps it in the sweep folder up to 60 characters, where Ray's socket paths can pass its 107-byte limit)
    root = tmp_path_factory.mktemp("plots_pendulum_timestepper")
    old = os.environ.get("DYNSWEEP_DATASETS")
    os.environ["DYNSWEEP_DATASETS"] = str(root / "datasets")
    launched: dict[str, Path] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, family: str) -> Path:
            launched[family] = self[family] = _launch(family, root)
            return launched[family]

    try:
        yield Lazy()
    finally:
        shutil.rmtree(root / "datasets", ignore_errors=True)
        if old is None:
            os.environ.pop("DYNSWEEP_DATASETS", None)
        else:
            os.environ["DYNSWEEP_DATASETS"] = old


def _applicable(family: str) -> tuple[str, ...]:
    return FAMILIES[family].all_plot_kinds()


CASES = [pytest.param(f, k, id=f"{f}-{k}") for f in SWEEPS for k in _applicable(f)]


@pytest.mark.parametrize("family,kind", CASES)
def test_applicable_kind_draws_a_png_of_its_size_logged_to_the_sweep(sweeps: dict[str, Path], family: str, kind: str,
                                                                     tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sweep = sweeps[family]
    capsys.readouterr()
    code = main(["plot", str(sweep), kind, "--out", str(tmp_path), *EXTRA[family].get(kind, [])])
    assert code == 0, capsys.readouterr().err
    assert_plot(sweep, kind, tmp_path, f"{family}-{kind}")


@pytest.mark.parametrize("family", list(SWEEPS))
def test_other_kinds_are_refused_in_one_line_naming_the_applicable_ones(sweeps: dict[str, Path], family: str,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    applicable = _applicable(family)
    others = [k for k in KINDS if k not in applicable]
    assert "field" in others and "phase" in others
    for kind in others:
        capsys.readouterr()
        assert main(["plot", str(sweeps[family]), kind, "--out", str(tmp_path)]) == 2, kind
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"does not apply to a {family} sweep" in err and all(k in err for k in applicable), err
        assert not (tmp_path / f"{kind}.png").exists()
