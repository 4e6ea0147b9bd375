"""The worldmodels, regression and visual plot kinds on a tiny real sweep of each family: every kind that
applies draws a non-blank PNG of its declared size, logged to the parent run; every other kind is
refused in one line that lists the ones that apply."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from analysis.plots import ALL
from search.cli import main
from trainables.common.artifacts import read_format
from trainables.registry import FAMILIES

from plotcheck import assert_plot  # tests/plotcheck.py

WORLD_SETS = ["base.seqs=6", "base.seq_steps=12", "base.steps=20", "base.report_every=10",
              "base.eval_horizons=[1, 5, 10]", "search.algorithm=grid", "scheduler.type=fifo", "search.num_samples=1",
              "space.model={grid: [jump, port_hamiltonian]}", "space.env={grid: [oscillator, pendulum]}",
              "space.width={choice: [16]}", "space.horizon={choice: [2]}", "space.lr={choice: [0.003]}"]
REGRESSION_SETS = ["base.steps=100", "base.report_every=50", "base.demo_rows=800", "search.algorithm=grid",
                   "scheduler.type=fifo", "search.num_samples=1", "space.loss={grid: [mse, tukey]}",
                   "space.scale={choice: [1.0], when: {loss: [tukey]}}",
                   "space.widths={choice: [64x64]}", "space.activation={grid: [gelu, tanh]}",
                   "space.lr={choice: [0.003]}"]
VISUAL_SETS = ["base.seqs=4", "base.seq_steps=12", "base.size=16", "base.steps=20", "base.report_every=10",
               "base.horizon=3", "base.hidden=8", "base.eval_horizons=[1, 5]", "search.algorithm=grid",
               "scheduler.type=fifo", "search.num_samples=1",
               "space.predictor={grid: [spatial_jump, spatial_hamiltonian]}", "space.mode={grid: [hgn, detached]}",
               "space.latent_channels={choice: [4]}", "space.beta={choice: [0.001]}", "space.lr={choice: [0.003]}"]
LATENT_SETS = ["base.dataset=simple_TBP_planar_10_train", "base.windows=2", "base.dt=0.1", "base.context=2.0",
               "base.forecast=1.0", "base.n_obs=5", "base.n_forecast_obs=3", "base.steps=20", "base.report_every=10",
               "base.latent=2", "base.enc_hidden=8", "base.width=8", "base.dec_width=8", "base.batch_size=4",
               "base.t_end=4.0", "space.model={grid: [latent_ode, state_ode]}", "space.noise={grid: [0.0, 0.01]}"]
SWEEPS = {"worldmodels": ("search_spaces/worldmodels.yaml", WORLD_SETS),
          "regression": ("search_spaces/regression_robust.yaml", REGRESSION_SETS),
          "visual": ("search_spaces/visual.yaml", VISUAL_SETS),
          "latentode": ("search_spaces/latentode_twobody.yaml", LATENT_SETS)}
NOT_THEIRS = {"worldmodels": ["field", "angles", "pred-vs-true", "pareto", "frames"],
              "regression": ["field", "angles", "horizon", "phase", "pixel-horizon"],
              "visual": ["field", "horizon", "phase", "energy"],
              "latentode": ["frames", "trajectory", "angles"]}
EXTRA = {("regression", "heatmap"): ["--x", "loss", "--y", "activation"],
         ("worldmodels", "heatmap"): ["--x", "model", "--y", "env"], ("worldmodels", "box"): ["--x", "model"],
         ("visual", "heatmap"): ["--x", "predictor", "--y", "mode"], ("visual", "box"): ["--x", "predictor"],
         ("latentode", "heatmap"): ["--x", "model", "--y", "noise"], ("latentode", "box"): ["--x", "model"]}

def _kinds(family: str) -> list[str]:
    return list(FAMILIES[family].all_plot_kinds())


def _cases() -> list[Any]:
    return [pytest.param(family, kind, id=f"{family}-{kind}") for family in sorted(SWEEPS) for kind in _kinds(family)]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """``sweeps(family)``: that family's tiny sweep, launched on first use (once per module)."""
    done: dict[str, dict[str, Any]] = {}

    def get(family: str) -> dict[str, Any]:
        if family not in done:
            root = tmp_path_factory.mktemp(family)
            spec, sets = SWEEPS[family]
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("DYNSWEEP_DATASETS", str(root / "datasets"))
                code = main(["launch", spec, "--num-cpus", "2",
                             *[a for s in [*sets, f"storage={root / 'runs'}"] for a in ("--set", s)]])
            assert code == 0
            folder = next(p for p in (root / "runs").iterdir() if (p / "mlflow_runs.json").exists())
            done[family] = {"family": family, "dir": folder, "root": root}
        return done[family]

    return get


def _artefacts(folder: Path) -> dict[str, pl.DataFrame]:
    """Every artefact of the sweep's runs by format id (the first found of each), from the checkpoints."""
    found: dict[str, pl.DataFrame] = {}
    for path in folder.rglob("*.parquet"):
        fmt = read_format(path)
        if fmt and fmt[0] not in found:
            found[fmt[0]] = pl.read_parquet(path)
    return found


@pytest.mark.parametrize("family", sorted(SWEEPS))
def test_final_evaluation_writes_the_family_artefacts(sweeps: Callable[[str], dict[str, Any]], family: str) -> None:
    from mlflow.tracking import MlflowClient

    from analysis.plotbase import ARTIFACTS
    from search.tracking import default_tracking_uri

    sweep = sweeps(family)
    client = MlflowClient(default_tracking_uri(sweep["dir"]))
    runs = json.loads((sweep["dir"] / "mlflow_runs.json").read_text())
    names = {Path(a.path).name for run_id in (v for k, v in runs.items() if k != "__sweep__")
             for a in client.list_artifacts(run_id, ARTIFACTS)}
    if sweep["family"] == "worldmodels":
        assert {"energy.parquet", "phase.parquet"} <= names
    elif sweep["family"] == "visual":
        assert {"frames.parquet", "horizon_curve.parquet"} <= names
    elif sweep["family"] == "latentode":
        assert "trajectories.parquet" in names
    else:
        assert "predictions.parquet" in names
    cache = sweep["root"] / "downloaded"
    for run_id in (v for k, v in runs.items() if k != "__sweep__"):
        client.download_artifacts(run_id, ARTIFACTS, str(cache / run_id))
    arts = _artefacts(cache)
    if sweep["family"] == "worldmodels":
        energy, phase = arts["worldmodels.energy"], arts["worldmodels.phase"]
        assert energy.height == 2 * (4 * 12 + 1)                   # 2 test sequences x (4 x 12 steps + start)
        first = energy.filter(pl.col("step") == 0)
        assert (first["energy_true"] - first["energy_pred"]).abs().max() < 1e-5   # same start state
        assert set(phase["q_name"]) <= {"x", "theta"} and set(phase["v_name"]) <= {"v", "omega"}
    elif sweep["family"] == "visual":
        frames, curve = arts["visual.frames"], arts["visual.horizon_curve"]
        assert frames.height == 2 * 6 and set(frames["horizon"]) == set(range(6))   # 2 test seqs x horizons 0..5
        assert {len(b) for b in frames["frame_true"]} == {16 * 16}                 # one grey 16x16 frame each
        assert curve["horizon"].to_list() == [1, 2, 3, 4, 5] and (curve["copy_last_mse"] > 0).all()
    elif sweep["family"] == "latentode":
        traj = arts["latentode.trajectories"]
        assert set(traj["kind"]) == {"observed", "true", "predicted"}
        assert set(traj["seq"]) == {0, 4, 9}                # 3 of the 10 test orbits x 1 window, spread
        assert set(traj["channel"]) == {"x", "y", "vx", "vy"} and set(traj["t_unit"]) == {"TU"}
        observed = traj.filter((pl.col("kind") == "observed") & (pl.col("channel") == "x"))
        assert observed.height == 3 * (5 + 3) and (traj["context_end"] == 2.0).all()
    else:
        pred = arts["regression.predictions"]
        assert set(pred["split"]) == {"train", "val"} and pred.height == 800     # every row of the demo
        assert pred["outlier"].null_count() == 0 and 0.05 < pred["outlier"].mean() < 0.3
        assert (pred["residual"] - (pred["prediction"] - pred["target"])).abs().max() < 1e-12
        outliers = pred.filter(pl.col("outlier"))
        assert ((outliers["target"] - outliers["clean"]) > 2.5).all()   # the demo's one-sided gross outliers


@pytest.mark.parametrize(("family", "kind"), _cases())
def test_every_applicable_kind_draws_its_declared_size(sweeps: Callable[[str], dict[str, Any]], family: str,
                                                       kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = sweeps(family)
    out = sweep["root"] / "plots"
    code = main(["plot", str(sweep["dir"]), kind, "--out", str(out), *EXTRA.get((family, kind), [])])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert_plot(sweep["dir"], kind, out, f"{family}-{kind}")


def test_each_family_declares_the_generic_and_its_own_kinds() -> None:
    for family, own in (("worldmodels", {"horizon", "energy", "dt-generalisation", "phase"}),
                        ("regression", {"pred-vs-true", "residuals", "by-loss"}),
                        ("visual", {"frames", "pixel-horizon"}), ("latentode", {"forecast"})):
        kinds = set(_kinds(family))
        assert own | {"curves", "box", "heatmap", "parallel"} <= kinds and own <= set(ALL)
        assert all(ALL[k].size[0] >= 400 and ALL[k].size[1] >= 300 for k in own)


@pytest.mark.parametrize("family", sorted(SWEEPS))
def test_kinds_of_other_families_are_refused_in_one_line(sweeps: Callable[[str], dict[str, Any]], family: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sweep = sweeps(family)
    out = sweep["root"] / "refused"
    for kind in NOT_THEIRS[family]:
        capsys.readouterr()
        assert main(["plot", str(sweep["dir"]), kind, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"does not apply to a {family} sweep" in err and ", ".join(_kinds(family)) in err
        assert not (out / f"{kind}.png").exists()


@pytest.mark.parametrize("model", ["jump", "lstm", "first_order_ode", "newtonian", "velocity", "port_hamiltonian"])
def test_world_model_artefacts_for_every_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str) -> None:
    from trainables.common.reporter import LocalReporter
    from trainables.worldmodels.train import run

    monkeypatch.setenv("DYNSWEEP_DATASETS", str(tmp_path / "datasets"))
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run({"seqs": 6, "seq_steps": 8, "steps": 4, "report_every": 2, "width": 16, "horizon": 2, "batch_size": 8,
         "eval_horizons": [1], "env": "spaceship", "model": model}, reporter)
    folder = reporter.artifact_dir()
    assert read_format(folder / "energy.parquet") == ("worldmodels.energy", 1)
    assert read_format(folder / "phase.parquet") == ("worldmodels.phase", 1)
    energy, phase = pl.read_parquet(folder / "energy.parquet"), pl.read_parquet(folder / "phase.parquet")
    assert energy.height == 2 * 33 and energy["t"].max() == pytest.approx(32 * 0.1)   # 2 test seqs, 4 x 8 steps
    true_e = energy.group_by("seq").agg((pl.col("energy_true").max() - pl.col("energy_true").min()).alias("d"))
    assert true_e["d"].max() < 1e-6                                          # the reference conserves energy
    assert energy["learned_h"].is_finite().all() == (model == "port_hamiltonian")
    assert set(zip(phase["pair"], phase["q_name"], phase["v_name"])) == {(0, "qx", "vx"), (1, "qy", "vy")}
    assert phase.height == 2 * 2 * 33
