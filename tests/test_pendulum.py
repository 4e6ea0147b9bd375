"""The double-pendulum family: physics, data, windows, model, training, and a sweep on Ray + MLflow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from search.cli import main
from trainables.common.errors import ConfigError, DataError, DatasetExistsError
from trainables.common.parquet_store import BufferedParquetWriter
from trainables.common.reporter import LocalReporter
from trainables.pendulum.config import PendulumConfig
from trainables.pendulum.dataset import (
    ENERGY_KEY,
    SCHEMA,
    PendulumDataset,
    PendulumSpec,
    ensure_dataset,
    write_dataset,
)
from trainables.pendulum.lyapunov import true_exponent
from trainables.pendulum.model import SequenceModel
from trainables.pendulum.physics import (
    Params,
    _dh_dp,
    _dh_dq,
    energy,
    integrate_reference,
    integrate_verlet,
)
from trainables.pendulum.train import run
from trainables.pendulum.windows import (
    WindowStream,
    encode,
    read_chunk,
    split_sims,
    targets,
)

P = Params()


def test_reference_integrator_conserves_energy_and_hamiltonian_gradients_are_exact() -> None:
    t = np.arange(0, 20.0 + 1e-9, 0.01)
    states = integrate_reference(np.radians([120.0, 120.0, 0.0, 0.0]), t, P)   # chaotic, 20 s
    e = energy(states, P)
    assert np.abs(e - e[0]).max() / P.energy_scale() < 1e-8
    q, mom, h = np.array([0.3, -1.2]), np.array([0.7, -0.4]), 1e-6

    def ham(q: np.ndarray, m: np.ndarray) -> float:
        return float(energy(np.concatenate([q, _dh_dp(q, m, P)]), P))

    for i in range(2):
        e_i = np.eye(2)[i]
        assert _dh_dq(q, mom, P)[i] == pytest.approx((ham(q + h * e_i, mom) - ham(q - h * e_i, mom)) / (2 * h), rel=1e-6)
        assert _dh_dp(q, mom, P)[i] == pytest.approx((ham(q, mom + h * e_i) - ham(q, mom - h * e_i)) / (2 * h), rel=1e-6)


def test_symplectic_verlet_has_bounded_energy_error_without_drift() -> None:
    t = np.arange(0, 80.0 + 1e-9, 0.02)
    s0 = np.radians([[45.0, 45.0, 0.0, 0.0], [90.0, 10.0, 0.0, 0.0]])
    states = integrate_verlet(s0, t, P, substeps=2)
    rel = np.abs(energy(states, P) - energy(s0, P)[:, None]) / P.energy_scale()
    quarter = len(t) // 4
    assert rel.max() < 5e-3                                  # h = 0.01 s: 5e-5 (45 deg), 2e-3 (90/10 deg)
    # no secular drift: the error of the last 20 s is no larger than that of the first 20 s (+10 %)
    assert np.all(rel[:, -quarter:].max(1) <= 1.1 * rel[:, :quarter].max(1))
    # same trajectory as the reference while chaos has not amplified the difference (first 2 s)
    ref = integrate_reference(s0[0], t[:101], P)
    assert np.abs(states[0, :101] - ref).max() < 1e-3


def test_largest_lyapunov_exponent_chaotic_and_regular() -> None:
    chaotic = true_exponent(np.radians([120.0, 120.0, 0.0, 0.0]), t_end=100.0)
    regular = true_exponent(np.radians([45.0, 45.0, 0.0, 0.0]), t_end=100.0)
    assert 1.2 < chaotic.exponent < 1.65          # docs/domain.md, section 6: about 1.4 1/s
    assert abs(regular.exponent) < 0.06           # about 0, decaying like log(t) / t
    assert regular.running[-1] < regular.running[len(regular.running) // 4]   # converging towards 0
    assert 0.6 < chaotic.lyapunov_time_s < 0.85


def _write_sims(path: Path, sims: dict[int, np.ndarray], dt: float = 0.1) -> None:
    """A file with the pendulum schema from ``{sim_id: states (n, 4)}`` (l = m = 1)."""
    with BufferedParquetWriter(path, SCHEMA, 7) as w:
        for sid, st in sims.items():
            n = len(st)
            cols = {"sim_id": np.full(n, sid, np.int32), "t": np.arange(n) * dt, "dt": np.full(n, dt)}
            cols.update({c: st[:, j] for j, c in enumerate(("theta1", "theta2", "theta1_dot", "theta2_dot"))})
            cols.update({c: np.ones(n) for c in ("l1", "l2", "m1", "m2")})
            w.write(cols)


@pytest.mark.parametrize("horizon", [1, 3])
def test_windows_never_cross_two_simulations(tmp_path: Path, horizon: int) -> None:
    n0, n1, window = 23, 17, 4
    far = {0: np.column_stack([np.zeros(n0), np.zeros(n0), np.arange(n0) * 0.01, np.zeros(n0)]),
           1: np.column_stack([np.zeros(n1), np.zeros(n1), 1000 + np.arange(n1) * 0.01, np.zeros(n1)])}
    _write_sims(tmp_path / "two.parquet", far)
    ds = PendulumDataset(tmp_path / "two.parquet")
    stream = WindowStream(ds, np.array([0, 1]), {0: n0, 1: n1}, window, horizon, "next", False, max_rows=10_000, seed=0)
    assert stream.windows_per_epoch == (n0 - window - horizon + 1) + (n1 - window - horizon + 1)
    seen = 0
    batches = stream.batches(5)
    while seen < stream.windows_per_epoch:
        x, y = next(batches)
        omega = torch.cat([x[..., 4], y[..., 4]], 1)            # omega1 of inputs and targets, (B, W + K)
        assert bool(((omega < 500).all(1) | (omega > 500).all(1)).all()), "a window mixes the two simulations"
        # consecutive: targets continue the inputs by exactly one sample each
        assert torch.allclose(omega.diff(dim=1), torch.full_like(omega[:, 1:], 0.01), atol=1e-4)
        seen += len(x)
    assert seen == stream.windows_per_epoch


def test_angle_encoding_has_no_jump_at_the_wrap(tmp_path: Path) -> None:
    theta = np.linspace(3.0, 3.4, 41)                       # crosses +pi
    wrapped = (theta + np.pi) % (2 * np.pi) - np.pi          # as a file with wrapped angles would hold it
    assert np.abs(np.diff(wrapped)).max() > 6.0              # the raw data jumps by 2 pi
    states = np.column_stack([wrapped, -wrapped, np.ones(41), np.zeros(41)])
    assert np.abs(np.diff(encode(states), axis=0)).max() < 0.02
    delta = targets(states, "delta")[1:]
    assert np.allclose(delta[:, 0], 0.01) and np.allclose(delta[:, 1], -0.01)


def test_normalisation_uses_training_simulations_only_and_zero_std_is_safe(tmp_path: Path) -> None:
    sims = {0: np.column_stack([np.zeros(30), np.zeros(30), np.full(30, 2.0) + np.arange(30) * 0.1, np.zeros(30)]),
            1: np.column_stack([np.zeros(30), np.zeros(30), np.full(30, 500.0), np.zeros(30)])}
    _write_sims(tmp_path / "n.parquet", sims)
    ds = PendulumDataset(tmp_path / "n.parquet")
    norm = WindowStream(ds, np.array([0]), {0: 30, 1: 30}, 3, 1, "delta", True, 10_000, 0).fit_normaliser()
    assert norm.x_mean[4] == pytest.approx(2.0 + 0.1 * 14.5)        # sim 1 (omega1 = 500) not included
    assert norm.x_std[6:].tolist() == [1.0] * 4                      # constant l1, l2, m1, m2: std 1, no NaN
    assert np.isfinite(norm.y_std).all() and norm.y_std[1] == 1.0     # theta2 never moves


def test_streaming_reads_bounded_chunks_and_split_is_by_simulation(tmp_path: Path) -> None:
    sims = {i: np.column_stack([np.full(20, i * 0.1), np.zeros(20), np.arange(20) * 0.01, np.zeros(20)])
            for i in range(12)}
    _write_sims(tmp_path / "s.parquet", sims)
    ds = PendulumDataset(tmp_path / "s.parquet")
    train, val, test = split_sims(np.arange(12), 0.2, 0.2, seed=3)
    assert (len(train), len(val), len(test)) == (8, 2, 2)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    stream = WindowStream(ds, train, {i: 20 for i in range(12)}, 5, 1, "delta", False, max_rows=45, seed=0)
    chunks = list(stream.chunks())
    assert len(chunks) == 4 and max(len(c.states) for c in chunks) <= 45          # 2 sims of 20 rows per chunk
    assert set(np.concatenate([c.row_sim for c in chunks])) == set(train)
    with pytest.raises(DataError, match="window=30"):
        WindowStream(ds, train, {i: 20 for i in range(12)}, 30, 1, "delta", False, 45, 0)
    with pytest.raises(DataError, match="cannot be split"):
        split_sims(np.arange(2), 0.5, 0.5, 0)


def test_dataset_generation_cli_refuses_to_overwrite_and_pool_matches_serial(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "pendulum", "--sims", "20", "--t-end", "1", "--random-params", "--root", str(tmp_path),
                 "--workers", "2"]) == 0
    path = tmp_path / "dpend_20x1s_dt0.01_dop853_rp_seed0.parquet"
    assert "wrote" in capsys.readouterr().out
    md = pq.read_metadata(path)
    assert md.schema.to_arrow_schema().names == SCHEMA.names and md.num_rows == 20 * 101
    assert float(md.metadata[ENERGY_KEY.encode()]) < 1e-8
    serial = write_dataset(PendulumSpec(sims=20, t_end=1, random_params=True), tmp_path / "serial.parquet", workers=1)
    assert serial == PendulumDataset(path).content_hash                # 2 chunks in 2 processes = 1 process
    before = path.read_bytes()
    assert main(["data", "pendulum", "--sims", "20", "--t-end", "1", "--random-params", "--root", str(tmp_path)]) == 0
    assert "exists, same parameters" in capsys.readouterr().out
    assert main(["data", "ls", "--root", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "dpend_20x1s_dt0.01_dop853_rp_seed0.parquet  (double pendulum: 20 simulations x 1 s at dt 0.01 s" in listing
    assert main(["data", "pendulum", "--sims", "20", "--t-end", "2", "--out", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert path.read_bytes() == before
    (tmp_path / "dpend_3x1s_dt0.01_dop853_seed0.parquet").write_bytes(before)   # a clash under a standard name
    with pytest.raises(DatasetExistsError, match="other parameters"):
        ensure_dataset(PendulumSpec(sims=3, t_end=1), tmp_path)


def test_one_simulation_and_a_time_window_by_id(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    write_dataset(PendulumSpec(sims=5, t_end=1.0), path, workers=1)
    ds = PendulumDataset(path)
    sim = ds.simulation(3)
    assert sim.height == 101 and set(sim["sim_id"].to_list()) == {3} and sim["t"].is_sorted()
    win = ds.window(3, 0.25, 0.5)
    assert win.height == 25 and win["t"].min() == pytest.approx(0.25) and win["t"].max() < 0.5
    assert win.equals(sim.filter((sim["t"] >= 0.25) & (sim["t"] < 0.5)))
    with pytest.raises(DataError, match=r"no simulation 7; its ids are 0..4 \(5 simulations\)"):
        ds.simulation(7)
    with pytest.raises(DataError, match="no sample with 5 <= t < 6 s"):
        ds.window(3, 5.0, 6.0)


def test_config_errors_name_the_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"config.rnn: 'transformer' is not allowed; allowed: lstm, gru, rnn"):
        PendulumConfig.from_dict({"rnn": "transformer"})
    with pytest.raises(ConfigError, match=r"config.window: 300 .* 201 samples"):
        PendulumConfig.from_dict({"window": 300, "t_end": 2.0})
    with pytest.raises(ConfigError, match="integrator"):
        PendulumConfig.from_dict({"integrator": "euler"})


TINY = {"sims": 10, "t_end": 3.0, "steps": 60, "report_every": 20, "hidden": 16, "layers": 1, "window": 8,
        "batch_size": 64, "horizons": [5, 50], "lyapunov_t_end": 2.0, "eval_sims": 2, "val_windows": 256}


@pytest.fixture()
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "datasets"
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("cell,target", [("lstm", "delta"), ("gru", "next")])
def test_training_reports_improves_and_resumes(tmp_path: Path, datasets: Path, cell: str, target: str) -> None:
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run({**TINY, "rnn": cell, "target": target}, reporter)
    steps = [r["step"] for r in reporter.history]
    assert steps == [20, 40, 60] and reporter.checkpoints == [20, 40, 60]
    assert reporter.history[-1]["train_loss"] < reporter.history[0]["train_loss"]
    assert final["best_val_loss"] == min(r["val_loss"] for r in reporter.history)
    assert set(PendulumConfig.from_dict(TINY).metric_names()) - {"step"} - {"test/rollout_nrmse_h50"} <= set(final)
    assert 0 < final["test/lyapunov_true"] and np.isfinite(final["test/lyapunov_model"])
    assert final["test/vpt_lyapunov"] == pytest.approx(final["test/vpt_s"] * final["test/lyapunov_true"])
    assert final["test/energy_drift_rel_true"] < 1e-8
    if target == "delta":   # 60 steps already beat "the angle stays where it was" (omega dt ~ 0.03 rad)
        assert final["test/one_step_rmse_theta1"] < 0.02, final["test/one_step_rmse_theta1"]
    assert (reporter.artifact_dir() / "rollout.parquet").exists() and (reporter.artifact_dir() / "lyapunov.parquet").exists()
    # resume from the step-40 state: continues at 41 and reports 60 only
    resumed = LocalReporter(tmp_path / "resumed", resume_from=reporter.checkpoint_path, progress=False)
    run({**TINY, "rnn": cell, "target": target, "steps": 80}, resumed)
    assert [r["step"] for r in resumed.history] == [80]


def test_saved_model_predicts_in_physical_units(tmp_path: Path, datasets: Path) -> None:
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run({**TINY, "steps": 20}, reporter)
    state = torch.load(reporter.checkpoint_path / "checkpoint.pt", weights_only=True)["model"]
    model = SequenceModel("lstm", 16, 1, 0.0, 6, "delta", 1)
    model.load_state_dict(state)                                 # normalisation comes with the weights
    assert float(model.x_std[4]) > 0.1 and float(model.y_std[2]) != 1.0
    ds = PendulumDataset(next(datasets.glob("*.parquet")))
    chunk = read_chunk(ds, np.array([0]), 8, 1, "delta", False)
    window = torch.from_numpy(chunk.states[None, :8])
    pred = model.predict(window, None)[0, 0].numpy()
    assert np.abs(pred - chunk.states[8]).max() < 0.3            # rad, rad/s: close to the true next state


def test_early_stopping_keeps_the_best_model(tmp_path: Path, datasets: Path) -> None:
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run({**TINY, "steps": 400, "report_every": 5, "lr": 0.05, "patience": 2}, reporter)
    assert final["stopped_early"] == 1.0 and reporter.history[-1]["step"] < 400
    assert final["best_step"] == min(reporter.history, key=lambda r: r["val_loss"])["step"]


def test_pendulum_sweep_end_to_end_with_mlflow(tmp_path: Path, datasets: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from search.tracking import default_tracking_uri

    sets = [f"base.{k}={json.dumps(v)}" for k, v in TINY.items()]
    sets += ["search.num_samples=3", "scheduler.grace_period=20", "scheduler.max_t=60", "max_concurrent=2",
             f"storage={tmp_path / 'runs'}", "space.hidden={choice: [8, 16]}", "space.layers={randint: [1, 3]}",
             "space.window={choice: [4, 8]}"]
    code = main(["launch", "search_spaces/pendulum_rnn.yaml", "--num-cpus", "2", *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    sweep = tmp_path / "runs" / "pendulum_rnn"
    client = MlflowClient(default_tracking_uri(sweep))
    exp = client.get_experiment_by_name("pendulum_rnn")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}     # stopped by ASHA: a result too
    assert {r.data.tags["dynsweep.outcome"] for r in runs} <= {"completed", "stopped_early"}
    assert {r.data.params["rnn"] for r in runs} <= {"lstm", "gru", "rnn"}
    for r in runs:
        history = client.get_metric_history(r.info.run_id, "val_loss")
        assert [m.step for m in history][:1] == [20]
    finished = [r for r in runs if "test/vpt_lyapunov" in r.data.metrics]
    assert finished, "no trial ran to the end"          # ASHA may stop others at step 20 or 40
    assert all(r.data.metrics["test/lyapunov_true"] > 0 for r in finished)
