"""World models: environments, datasets, every model on every environment, leapfrog, the HNN anchor, a sweep."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from search.cli import main
from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.worldmodels.config import WorldConfig
from trainables.worldmodels.envs import ENVS
from trainables.worldmodels.hnn import PAPER, anchor
from trainables.worldmodels.models import CONTINUOUS, MODELS, build
from trainables.worldmodels.train import run

TOLERANCE = {"oscillator": 1e-8, "pendulum": 1e-8, "spaceship": 1e-8, "threebody": 1e-4}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_reference_integrators_conserve_energy_without_forcing_and_actions_act(name: str) -> None:
    env = ENVS[name]
    rng = np.random.default_rng(0)
    p = env.draw_params(rng, 8)
    s0 = env.draw_initial(rng, 8, p)
    free = env.rollout(s0, np.zeros((8, 200), int), p, env.dt)
    e = np.stack([env.energy(free[:, k], p) for k in range(201)], 1)
    assert (np.abs(e - e[:, :1]).max(1) / np.abs(e[:, 0])).max() < TOLERANCE[name]
    pushed = env.rollout(s0, np.ones((8, 50), int), p, env.dt)        # action 1 held: the energy changes
    assert np.abs(env.energy(pushed[:, -1], p) - e[:, 0]).mean() > 100 * TOLERANCE[name] * np.abs(e[:, 0]).mean()


@pytest.fixture()
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "datasets"
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_dataset_command_writes_three_independent_splits(datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "worlds", "--env", "spaceship", "--seqs", "10", "--steps", "12", "--seed", "3", "--hold", "4"]
    assert main(args) == 0
    folder = datasets / "worlds_spaceship_10x12_dt0.1_h4_seed3"
    frames = {s: pl.read_parquet(folder / f"{s}.parquet") for s in ("train", "val", "test")}
    assert {s: f["seq_id"].n_unique() for s, f in frames.items()} == {"train": 10, "val": 2, "test": 2}
    train = frames["train"]
    assert train.columns[:5] == ["seq_id", "step", "t", "dt", "action"] and "p_mu" in train.columns
    assert train.height == 10 * 13 and set(train["action"].unique()) <= set(range(9)) | {-1}
    held = train.filter(pl.col("seq_id") == 0)["action"].to_list()[:12]
    assert held[:4] == [held[0]] * 4                                              # actions held for 4 samples
    assert not np.allclose(frames["val"]["qx"].to_numpy()[:13], frames["test"]["qx"].to_numpy()[:13])
    before = (folder / "train.parquet").read_bytes()
    assert main(args) == 0 and "exists, same parameters" in capsys.readouterr().out
    assert (folder / "train.parquet").read_bytes() == before
    assert main(["data", "ls"]) == 0
    assert "(world model, env spaceship: train 10 / val 2 / test 2 sequences x 12 actions, hold 4)" in \
        capsys.readouterr().out


TINY = {"seqs": 6, "seq_steps": 12, "steps": 6, "report_every": 3, "width": 16, "horizon": 3, "batch_size": 16,
        "eval_horizons": [1, 10]}


@pytest.mark.parametrize("env", sorted(ENVS))
@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_on_every_environment(tmp_path: Path, datasets: Path, env: str, model: str) -> None:
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run({**TINY, "env": env, "model": model}, reporter)
    assert [r["step"] for r in reporter.history] == [3, 6] and reporter.checkpoints == [3, 6]
    assert math.isfinite(final["train_loss"]) and math.isfinite(final["val_loss"])
    assert math.isfinite(final["test/rollout_mse_h10"]) and final["test/energy_drift_true"] < 1e-4
    dt_metrics = [final[f"test/dt_x{f}_mse"] for f in ("0.5", "2", "4")]
    if model in CONTINUOUS:
        assert all(math.isfinite(v) for v in dt_metrics) and "dt_generalisation" not in reporter.tag_values
    else:   # reported as not applicable, not left out
        assert all(math.isnan(v) for v in dt_metrics)
        assert reporter.tag_values["dt_generalisation"] == "not applicable (discrete-time model)"


def test_training_learns_and_shooting_curriculum_grows(tmp_path: Path, datasets: Path) -> None:
    cfg = {**TINY, "seqs": 16, "env": "oscillator", "model": "newtonian", "steps": 400, "report_every": 50,
           "horizon": 4, "curriculum": True, "lr": 3e-3, "width": 32, "batch_size": 32}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run(cfg, reporter)
    assert [r["horizon_now"] for r in reporter.history] == [1, 2, 3, 3, 4, 4, 4, 4]   # 1 -> 4 over 200 steps
    assert reporter.history[-1]["val_loss"] < reporter.history[0]["val_loss"] / 4
    resumed = LocalReporter(tmp_path / "resumed", resume_from=reporter.checkpoint_path, progress=False)
    run({**cfg, "steps": 450}, resumed)
    assert [r["step"] for r in resumed.history] == [450]


def test_leapfrog_keeps_a_separable_learned_hamiltonian_bounded() -> None:
    torch.manual_seed(0)
    energies = {}
    for method in ("leapfrog", "euler"):
        torch.manual_seed(0)
        model = build("port_hamiltonian", 2, 3, 0, 16, 2, "tanh", method, 1, separable=True).double()
        with torch.no_grad():
            for p in model.port.parameters():
                p.zero_()                                   # no input port, no dissipation: a closed system
            model.dissipation_raw.fill_(-50.0)
        s0 = torch.tensor([[0.5, 0.0], [-0.3, 0.4]], dtype=torch.float64)
        traj = model.rollout(s0, torch.zeros(2, 2000, dtype=torch.long), None, 0.05)
        h = torch.stack([model.energy(traj[:, k], None) for k in range(0, 2000, 10)], 1)
        energies[method] = (h - model.energy(s0, None)[:, None]).abs()
    assert float(energies["leapfrog"].max()) < 0.02 * float(energies["euler"].max())
    first, last = energies["leapfrog"][:, :50].max(), energies["leapfrog"][:, -50:].max()
    assert float(last) < 2 * float(first)                  # bounded: no secular drift


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="config.model: 'gru' is not allowed; allowed: jump, lstm"):
        WorldConfig.from_dict({"model": "gru"})
    with pytest.raises(ConfigError, match="leapfrog needs a model with a q/v split"):
        WorldConfig.from_dict({"model": "jump", "method": "leapfrog"})


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])   # the seed with the smallest margin of 0..3; more in the benchmark
def test_hnn_anchor_mass_spring_conserves_energy_where_the_baseline_drifts(seed: int) -> None:
    """What holds for every seed (benchmarks/hnn_anchor.py gives the median and range over more):
    at a comparable derivative fit, the HNN's energy error does not grow with the horizon while
    the baseline's grows several-fold, so over 100 time units the HNN is clearly better. The
    paper's 20-unit energy ratio (~445x) is not a per-seed fact here: over 20 units the two are
    within 1-40x of each other depending on the seed."""
    r = anchor("spring", steps=2000, seed=seed)    # the paper's recipe: 25 + 25 noisy trajectories, 200 x 2 tanh
    assert 0.67 < r["hnn_deriv"] / r["baseline_deriv"] < 1.5, r       # derivative fit comparable
    assert r["baseline_deriv"] == pytest.approx(PAPER["spring"]["baseline_deriv"], rel=0.5)
    assert r["hnn_energy_long"] < 1.3 * r["hnn_energy"], r            # bounded: no secular drift
    assert r["baseline_energy_long"] > 3 * r["baseline_energy"], r    # the baseline drifts
    assert r["hnn_energy_long"] * 5 < r["baseline_energy_long"], r
    assert r["hnn_energy_long"] < 3e-4, r


def test_hnn_anchor_is_a_function_of_the_seed() -> None:
    """Same seed, same numbers (data, initial weights and batches all come from the seed)."""
    a, b = (anchor("spring", steps=30, seed=4, long_t=20.0) for _ in range(2))
    assert a == b


def test_worldmodels_sweep_end_to_end_and_analyze_shows_dt_generalisation(tmp_path: Path, datasets: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sets = ["base.seqs=6", "base.seq_steps=12", "base.steps=20", "base.report_every=10", "base.eval_horizons=[1, 10]",
            "search.num_samples=4", "search.algorithm=grid", "scheduler.type=fifo", f"storage={tmp_path / 'runs'}",
            "space.model={grid: [jump, first_order_ode]}", "space.env={grid: [oscillator, spaceship]}",
            "space.width={choice: [16]}", "space.horizon={choice: [2]}", "space.lr={choice: [0.001]}",
            "search.num_samples=1"]
    code = main(["launch", "search_spaces/worldmodels.yaml", "--num-cpus", "2", *[a for s in sets for a in ("--set", s)]])
    assert code == 0, capsys.readouterr().err[-3000:]
    sweep = tmp_path / "runs" / "worldmodels"
    capsys.readouterr()
    assert main(["analyze", str(sweep), "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    rows = table["rows"]
    assert len(rows) == 4 and {(r["model"], r["env"]) for r in rows} == {
        (m, e) for m in ("jump", "first_order_ode") for e in ("oscillator", "spaceship")}
    for row in rows:
        for key in ("dt_x0.5_mse", "dt_x2_mse", "dt_x4_mse"):
            value = row[key]
            if row["model"] == "jump":
                assert value is None or math.isnan(value)
            else:
                assert value is not None and value > 0
        assert row["rollout_mse_h10"] > 0 and row["energy_drift"] >= 0


def test_pre_generated_dataset_by_name_horizon_curve_and_dt_factors(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import polars as pl

    from search.cli import main as cli
    from trainables.common.reporter import LocalReporter
    from trainables.worldmodels.train import run as train

    root = tmp_path / "data"
    assert cli(["data", "worlds", "--env", "oscillator", "--seqs", "10", "--steps", "20", "--root", str(root)]) == 0
    name = next(p.name for p in root.iterdir() if p.is_dir())
    cfg = {"datasets_root": str(root), "dataset": name, "env": "oscillator", "model": "newtonian", "width": 16,
           "steps": 20, "report_every": 10, "eval_horizons": [1, 5, 20], "dt_factors": [3.0]}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = train(cfg, reporter)
    assert reporter.tag_values["dataset"] == name and "test/dt_x3_mse" in final and "test/dt_x2_mse" not in final
    curve = pl.read_parquet(reporter.artifact_dir() / "horizon_curve.parquet").filter(pl.col("state") == "all")
    assert curve.height == 20 and curve["step"].to_list() == list(range(1, 21))
    for h in (1, 5, 20):  # the curve at the chosen horizons is the reported metric
        assert curve.filter(pl.col("step") == h)["mse"][0] == pytest.approx(final[f"test/rollout_mse_h{h}"], rel=1e-6)
    assert final["test/rollout_mse_mean"] == pytest.approx(curve["mse"].mean(), rel=1e-6)
    with pytest.raises(ConfigError, match="holds env 'oscillator', the config says env 'pendulum'"):
        train({**cfg, "env": "pendulum"}, LocalReporter(tmp_path / "bad", progress=False))
    with pytest.raises(ConfigError, match="is not a world-model dataset"):
        train({**cfg, "dataset": "nothing_here"}, LocalReporter(tmp_path / "bad2", progress=False))


def test_symplectic_euler_data_keeps_energy_bounded_and_is_a_first_order_scheme() -> None:
    from trainables.worldmodels.envs import ENVS

    env = ENVS["threebody"]
    rng = np.random.default_rng(0)
    p = env.draw_params(rng, 4)
    s0 = env.draw_initial(rng, 4, p)
    idle = np.zeros((4, 200), dtype=np.int64)
    e0 = env.energy(s0, p)
    drift = {scheme: np.abs(env.energy(env.rollout(s0, idle, p, env.dt, 20, scheme)[:, -1], p) - e0).max()
             for scheme in ("rk4", "symplectic_euler")}
    assert drift["rk4"] < drift["symplectic_euler"] < 0.05 * np.abs(e0).max()   # first order, yet bounded
    # first order: halving h halves the one-sample error against an RK4 reference
    ref = env.step(s0, idle[:, 0], p, env.dt, 400)
    errs = [np.abs(env.step(s0, idle[:, 0], p, env.dt, n, "symplectic_euler") - ref).max() for n in (20, 40)]
    assert 1.7 < errs[0] / errs[1] < 2.3
    from trainables.worldmodels.data import WorldSpec

    assert WorldSpec(env="threebody", scheme="symplectic_euler").name.endswith("_symplectic_seed0")
    assert "_symplectic" not in WorldSpec(env="threebody").name            # existing names keep their meaning
    with pytest.raises(ConfigError, match="config.data_scheme"):
        from trainables.worldmodels.config import WorldConfig

        WorldConfig(data_scheme="leapfrog")


def test_parameter_and_initial_state_ranges_are_configurable(tmp_path: Path) -> None:
    import polars as pl

    from trainables.common.reporter import LocalReporter
    from trainables.worldmodels.config import WorldConfig, dataset_folder
    from trainables.worldmodels.train import run as train

    base = {"datasets_root": str(tmp_path), "env": "pendulum", "seqs": 10, "seq_steps": 10}
    narrow = {**base, "param_ranges": {"l": [1.0, 1.1]}, "initial_ranges": {"theta": [0.1, 0.2], "omega": [0, 0]}}
    folder = dataset_folder(WorldConfig.from_dict(narrow))
    assert folder != dataset_folder(WorldConfig.from_dict(base))            # another dataset, another name
    df = pl.read_parquet(folder / "train.parquet")
    first = df.filter(pl.col("step") == 0)
    assert first["theta"].is_between(0.1, 0.2).all() and (first["omega"] == 0).all()
    assert df["p_l"].is_between(1.0, 1.1).all() and df["p_m"].is_between(0.5, 1.5).all()
    assert not df["p_m"].is_between(1.0, 1.1).all()                        # m keeps the env's range
    assert dataset_folder(WorldConfig.from_dict(narrow)) == folder          # found again, not regenerated
    final = train({**narrow, "steps": 4, "report_every": 2, "width": 8}, LocalReporter(tmp_path / "r", progress=False))
    assert math.isfinite(final["test/rollout_mse_h1"])
    with pytest.raises(ConfigError, match=r"config.param_ranges.g: not a range of env pendulum"):
        WorldConfig.from_dict({**base, "param_ranges": {"g": [9, 10]}})
    with pytest.raises(ConfigError, match=r"config.initial_ranges.theta: expected \[low, high\]"):
        WorldConfig.from_dict({**base, "initial_ranges": {"theta": 2}})


def test_default_initial_states_are_the_draws_they_always_were() -> None:
    """Configurable ranges must not change the datasets that existing names stand for."""
    from trainables.worldmodels.envs import ENVS

    env = ENVS["oscillator"]
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    p = env.draw_params(a, 5)
    b.uniform(0.5, 2.0, 5), b.uniform(0.5, 2.0, 5)       # the parameter draws, as before
    assert np.array_equal(env.draw_initial(a, 5, p), b.uniform(-1, 1, (5, 2)))
