"""The regression family: robust losses, the objective, normalisation, tables, HDF5, and a sweep."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pytest
import torch

from search.cli import main
from trainables.common.errors import ConfigError, DatasetExistsError
from trainables.common.reporter import LocalReporter
from trainables.regression.config import RegressionConfig
from trainables.regression.data import DemoSpec, clean_function, split_rows, write_demo
from trainables.regression.losses import LOSSES, jacobian_penalty, objective
from trainables.regression.model import RegressionMLP
from trainables.regression.train import run

R = [-3.0, -0.5, 0.0, 0.2, 1.5, 2.5]
C = 2.0


def _rho_psi(name: str, r: float, c: float) -> tuple[float, float]:
    """rho(r) and d rho / d r written out by hand."""
    u = r / c
    if name == "mse":
        return r * r, 2 * r
    if name == "huber":
        return (0.5 * r * r, r) if abs(r) <= c else (c * (abs(r) - 0.5 * c), math.copysign(c, r))
    if name == "cauchy":
        return 0.5 * c * c * math.log(1 + u * u), r / (1 + u * u)
    if name == "welsch":
        return 0.5 * c * c * (1 - math.exp(-u * u)), r * math.exp(-u * u)
    if name == "geman_mcclure":
        return 0.5 * r * r / (1 + u * u), r / (1 + u * u) ** 2
    if name == "tukey":
        return (c * c / 6 * (1 - (1 - u * u) ** 3), r * (1 - u * u) ** 2) if abs(r) <= c else (c * c / 6, 0.0)
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_robust_loss_matches_its_formula_and_gradient(name: str) -> None:
    r = torch.tensor(R, dtype=torch.float64, requires_grad=True)
    rho = LOSSES[name](r, C)
    (psi,) = torch.autograd.grad(rho.sum(), r)
    for i, value in enumerate(R):
        want_rho, want_psi = _rho_psi(name, value, C)
        assert float(rho[i].detach()) == pytest.approx(want_rho, rel=1e-12, abs=1e-15), (name, value)
        assert float(psi[i]) == pytest.approx(want_psi, rel=1e-12, abs=1e-15), (name, value)


def test_hand_computed_values() -> None:
    r = torch.tensor([1.5], dtype=torch.float64)
    assert float(LOSSES["welsch"](r, 2.0)) == pytest.approx(0.8604343, rel=1e-6)      # 2 (1 - e^-0.5625)
    assert float(LOSSES["tukey"](r, 2.0)) == pytest.approx(0.6108398, rel=1e-6)       # 4/6 (1 - 0.4375^3)
    assert float(LOSSES["cauchy"](r, 2.0)) == pytest.approx(0.8925742, rel=1e-6)      # 2 ln 1.5625
    assert float(LOSSES["geman_mcclure"](r, 2.0)) == pytest.approx(0.72, rel=1e-12)   # 1.125 / 1.5625
    assert float(LOSSES["huber"](torch.tensor([3.0]), 2.0)) == pytest.approx(4.0)      # 2 (3 - 1)
    assert float(LOSSES["tukey"](torch.tensor([5.0]), 2.0)) == pytest.approx(4 / 6)    # flat beyond c


def test_objective_terms_equal_their_definitions() -> None:
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, -4.0]]))
        lin.bias.copy_(torch.tensor([1.0]))
    x = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
    y_true = torch.tensor([[0.0], [0.0]])
    pred = lin(x)                                         # [-4, 5]
    loss, terms = objective(LOSSES["mse"], 1.0, pred, y_true, x, list(lin.parameters()), 2.0, 0.5, 0.25, 0.1)
    assert terms["recon"] == pytest.approx((16 + 25) / 2)
    assert terms["l1"] == pytest.approx((3 + 4 + 1) / 3) and terms["l2"] == pytest.approx((9 + 16 + 1) / 3)
    assert terms["grad_penalty"] == pytest.approx(25.0)   # ||dy/dx||^2 = 3^2 + 4^2 for every row
    assert float(loss.detach()) == pytest.approx(2 * 20.5 + 0.5 * 8 / 3 + 0.25 * 26 / 3 + 0.1 * 25)
    assert float(jacobian_penalty(pred, x).detach()) == pytest.approx(25.0)


@pytest.fixture()
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "datasets"
    monkeypatch.setenv("DYNSWEEP_DATASETS", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


QUICK = {"steps": 600, "report_every": 200, "batch_size": 1024, "widths": "64x64", "demo_rows": 3000}


def test_redescending_losses_recover_the_clean_function_despite_outliers(tmp_path: Path, datasets: Path) -> None:
    clean = {}
    for loss in ("mse", "welsch", "tukey"):
        final = run({**QUICK, "loss": loss}, LocalReporter(tmp_path / loss, progress=False))
        clean[loss] = final["clean_rmse_all"]
    # 15 % of rows carry +3..6 outliers: MSE is pulled up by ~0.7; Welsch and Tukey ignore them.
    assert clean["mse"] > 0.4
    assert clean["welsch"] < clean["mse"] / 5 and clean["tukey"] < clean["mse"] / 5, clean


def test_saved_model_predicts_in_physical_units(tmp_path: Path, datasets: Path) -> None:
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run({**QUICK, "loss": "tukey", "steps": 400}, reporter)
    state = torch.load(reporter.checkpoint_path / "checkpoint.pt", weights_only=True)["model"]
    fresh = RegressionMLP(3, 1, [64, 64], "gelu")
    fresh.load_state_dict(state)                          # weights and normalisation buffers
    x = np.random.default_rng(5).uniform(-1, 1, (500, 3))
    pred = fresh.predict(torch.as_tensor(x, dtype=torch.float32)).numpy()[:, 0]
    assert np.sqrt(((pred - clean_function(x)) ** 2).mean()) < 0.1          # physical units: y ~ 0.5 .. 2.5
    assert float(fresh.y_mean[0]) > 1.0 and float(fresh.x_std[0]) == pytest.approx(2 / math.sqrt(12), rel=0.05)
    assert final["clean_rmse_val"] < 0.1


def test_constant_input_column_and_validation_split(tmp_path: Path, datasets: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 400)
    pl.DataFrame({"a": x, "const": np.full(400, 7.0), "y": 3 * x + 1}).write_parquet(tmp_path / "t.parquet")
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run({"dataset": str(tmp_path / "t.parquet"), "inputs": ["a", "const"], "outputs": ["y"], "steps": 300,
                 "report_every": 100, "widths": [32, 32], "batch_size": 256, "lr": 3e-3}, reporter)
    assert math.isfinite(final["val_loss"]) and final["val_rmse"] < 0.1 and "clean_rmse_val" not in final
    train, val = split_rows(400, 0.2, seed=0, validate_on_train=False)
    assert len(val) == 80 and not set(train) & set(val)
    same_train, same_val = split_rows(400, 0.2, seed=0, validate_on_train=True)
    assert (same_train == same_val).all() and len(same_val) == 400


def test_missing_columns_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "t.parquet"
    pl.DataFrame({"cadence": [1.0, 2.0], "stride": [0.5, 0.6], "cot": [3.0, 4.0]}).write_parquet(table)
    with pytest.raises(ConfigError, match=r"config.inputs: column\(s\) 'speed' not in .*t.parquet; "
                                          r"its columns: cadence, stride, cot"):
        RegressionConfig.from_dict({"dataset": str(table), "inputs": ["cadence", "speed"], "outputs": ["cot"]})
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"name: s\nfamily: regression\nbase: {{dataset: {table}, inputs: [cadence], outputs: [cost]}}\n"
                     "space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}\nsearch: {metric: val_mae, mode: min}\n")
    assert main(["validate", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml" in err and "config.outputs: column(s) 'cost' not in" in err and "cadence, stride, cot" in err
    with pytest.raises(ConfigError, match="allowed: mse, huber, cauchy, welsch, geman_mcclure, tukey"):
        RegressionConfig.from_dict({"loss": "l1"})
    with pytest.raises(ConfigError, match="config.widths"):
        RegressionConfig.from_dict({"widths": "64xabc"})


def test_hdf5_rollouts_convert_once_to_parquet_and_train(tmp_path: Path, datasets: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(1)
    path = tmp_path / "rollouts.h5"
    with h5py.File(path, "w") as f:
        f["parameter_names"] = np.array([b"cadence", b"stride"])
        for n in range(60):
            g = f.create_group(f"param_{n}")
            cadence, stride = rng.uniform(0.8, 1.2), rng.uniform(0.5, 1.5)
            g["param_state"] = np.array([cadence, stride])
            g.attrs["metabolic/cot/MA/mean"] = 2 * cadence + stride ** 2
            g.create_group("metabolic/cot/MA").attrs["std"] = 0.1 * cadence   # an attribute of a sub-group
    out = tmp_path / "rollouts.parquet"
    assert main(["data", "hdf5-to-parquet", str(path), "--out", str(out)]) == 0
    df = pl.read_parquet(out)
    assert df.columns == ["param_id", "cadence", "stride", "metabolic/cot/MA/mean", "metabolic/cot/MA/std"]
    assert df.height == 60 and df["param_id"].to_list() == list(range(60))
    assert np.allclose(df["metabolic/cot/MA/mean"], 2 * df["cadence"] + df["stride"] ** 2)
    before = out.read_bytes()
    from trainables.regression.hdf5 import convert

    with pytest.raises(DatasetExistsError):
        convert(path, out)
    assert out.read_bytes() == before
    final = run({"dataset": str(out), "inputs": ["cadence", "stride"], "outputs": ["metabolic/cot/MA/mean"],
                 "steps": 300, "report_every": 100, "widths": "32x32", "batch_size": 64, "lr": 3e-3},
                LocalReporter(tmp_path / "run", progress=False))
    assert final["val_rmse"] < 0.3 and "val_rmse_metabolic/cot/MA/mean" in final


def _rollouts(h5py, path: Path, n: int, failed: set[int], seed: int) -> None:  # type: ignore[no-untyped-def]
    """A generated rollout file; the rollouts in ``failed`` say success = 0 (as attribute or dataset)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f["parameter_names"] = np.array([b"cadence", b"stride"])
        for k in range(n):
            g = f.create_group(f"param_{k}")
            g["param_state"] = rng.uniform(0.5, 1.5, 2)
            g.attrs["metabolic/cot/MA/mean"] = 1.0 + k
            if k % 2:
                g.attrs["success"] = k not in failed
            else:
                g["success"] = np.int8(k not in failed)


def test_hdf5_success_flag_aliases_and_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h5py = pytest.importorskip("h5py")
    _rollouts(h5py, tmp_path / "a.h5", 10, {2, 3, 7}, 0)
    _rollouts(h5py, tmp_path / "b.h5", 4, {0}, 1)
    out = tmp_path / "all.parquet"
    assert main(["data", "hdf5-to-parquet", str(tmp_path / "a.h5"), str(tmp_path / "b.h5"), "--out", str(out),
                 "--alias", "cot=metabolic/cot/MA/mean"]) == 0
    assert "4 failed rollouts left out" in capsys.readouterr().out
    df = pl.read_parquet(out)
    assert df.columns == ["param_id", "file_index", "cadence", "stride", "cot"]      # success is not an output
    kept = list(zip(df["file_index"].to_list(), df["param_id"].to_list()))
    assert kept == [(0, k) for k in range(10) if k not in {2, 3, 7}] + [(1, k) for k in (1, 2, 3)]
    assert df["cot"].to_list() == [1.0 + k for _, k in kept]
    from trainables.common.parquet_store import read_dynsweep_metadata

    assert read_dynsweep_metadata(out)["failed_rollouts"] == 4
    assert main(["data", "hdf5-to-parquet", str(tmp_path / "a.h5"), "--out", str(tmp_path / "x.parquet"),
                 "--alias", "cot=no/such/output"]) == 2
    assert "alias for no/such/output: no such output" in capsys.readouterr().err
    assert main(["data", "hdf5-to-parquet", str(tmp_path / "a.h5"), "--out", str(tmp_path / "y.parquet"),
                 "--alias", "stride=metabolic/cot/MA/mean"]) == 2
    assert "alias stride is already a column name" in capsys.readouterr().err


def test_demo_is_deterministic_and_refuses_overwrite(tmp_path: Path) -> None:
    a = write_demo(DemoSpec(rows=100), tmp_path / "a.parquet")
    assert a == write_demo(DemoSpec(rows=100), tmp_path / "b.parquet")
    with pytest.raises(DatasetExistsError):
        write_demo(DemoSpec(rows=100, seed=1), tmp_path / "a.parquet")
    df = pl.read_parquet(tmp_path / "a.parquet")
    assert 5 <= int(df["is_outlier"].sum()) <= 30 and (df.filter(pl.col("is_outlier"))["y"]
                                                       - df.filter(pl.col("is_outlier"))["y_clean"]).min() > 2.5


def test_regression_sweep_end_to_end_with_mlflow(tmp_path: Path, datasets: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from search.tracking import default_tracking_uri

    sets = ["base.steps=60", "base.report_every=20", "base.demo_rows=1000", "search.num_samples=3",
            "scheduler.grace_period=20", "scheduler.max_t=60", f"storage={tmp_path / 'runs'}"]
    code = main(["launch", "search_spaces/regression_robust.yaml", "--num-cpus", "2",
                 *[a for s in sets for a in ("--set", s)]])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    client = MlflowClient(default_tracking_uri(tmp_path / "runs" / "regression_robust"))
    exp = client.get_experiment_by_name("regression_robust")
    runs = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and "FINISHED" in {r.info.status for r in runs}
    assert {r.data.params["loss"] for r in runs} <= set(LOSSES)
    for r in runs:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val_mae")][:1] == [20]
        assert r.data.metrics["clean_rmse_val"] > 0


def test_a_loss_schedule_switches_the_loss_at_its_step(tmp_path: Path, datasets: Path) -> None:
    base = {"steps": 120, "report_every": 30, "widths": "16x16", "batch_size": 256, "lr": 3e-3}
    plain = LocalReporter(tmp_path / "mse", progress=False)
    run({**base, "loss": "mse"}, plain)
    switched = LocalReporter(tmp_path / "switch", progress=False)
    run({**base, "loss_schedule": [[0, "mse"], [60, "tukey"]]}, switched)
    assert [r["loss_phase"] for r in switched.history] == [0.0, 0.0, 1.0, 1.0]
    # the same 60 mse steps, then another objective
    assert [r["train_loss"] for r in switched.history[:2]] == [r["train_loss"] for r in plain.history[:2]]
    assert switched.history[2]["train_loss"] != plain.history[2]["train_loss"]
    # val_loss measures the schedule's last loss from the start (tukey <= mse / 2 on any residual)
    assert switched.history[0]["val_loss"] < plain.history[0]["val_loss"]
    with pytest.raises(ConfigError, match="config.loss_schedule"):
        RegressionConfig.from_dict({"loss_schedule": [[10, "mse"]]})
    with pytest.raises(ConfigError, match="'l7' is not allowed"):
        RegressionConfig.from_dict({"loss_schedule": [[0, "mse"], [5, "l7"]]})
