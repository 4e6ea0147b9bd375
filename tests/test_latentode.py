"""The latent ODE family: observation sets, the KL term, recovery of a known linear system,
irregular times, the GRU baseline, two-body observations (exact orbits, conserved quantities, the
state-space ODE baseline, ``evaluate`` on another dataset). Its contract (resume bit for bit, artefacts) is checked in
``test_family_contract.py``, its sweep and plot in ``test_plots_worldmodels_regression.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.common import checkpoint
from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.latentode.config import LatentODEConfig
from trainables.latentode.metrics import errors, orbit_drifts, to_batch
from trainables.latentode.model import kl_normal
from trainables.latentode.observations import draw
from trainables.latentode.sources import linear, twobody
from trainables.latentode.train import (build, evaluate_checkpoint, final_metrics, normalisation, observation_sets,
                                       run)

LINEAR = {"system": "linear", "dt": 0.2, "substep": 0.4, "context": 4.0, "forecast": 4.0, "n_obs": 10,
          "n_forecast_obs": 5, "noise": 0.01, "kl_weight": 0.01, "latent": 2, "lr": 0.005, "width": 32,
          "linear_trajs": 128, "windows": 1, "time_scale": 1.0, "steps": 600, "report_every": 300}


def test_kl_matches_its_closed_form() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(kl_normal(mu, logvar), expected, atol=1e-6)
    assert float(kl_normal(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max()) == 0.0


def test_observation_sets_are_irregular_noisy_and_deterministic() -> None:
    traj = linear(20, 51, 0.2, 3)
    a = draw(traj, "train", 4.0, 4.0, 10, 5, 0.05, obs_seed=7)
    b = draw(traj, "train", 4.0, 4.0, 10, 5, 0.05, obs_seed=7)
    c = draw(traj, "train", 4.0, 4.0, 10, 5, 0.05, obs_seed=8)
    assert a.content_hash == b.content_hash and np.array_equal(a.x_obs, b.x_obs)
    assert a.content_hash != c.content_hash and not np.array_equal(a.t_obs, c.t_obs)
    gaps = np.diff(a.t_obs[:, :10], axis=1)
    assert (gaps > 0).all() and len(np.unique(gaps.round(6))) > 1           # sorted, not evenly spaced
    assert (a.t_obs[:, :10] < 4.0).all() and (a.t_obs[:, 10:] >= 4.0).all()  # context, then forecast
    assert a.x_interp.shape == (20, 10, 3)
    assert not any(np.isin(a.t_interp[i], a.t_obs[i]).any() for i in range(20))  # held out, not observed
    residual = a.x_obs - np.stack([a.x_grid[i, np.round(a.t_obs[i] / 0.2).astype(int)] for i in range(20)])
    assert 0.04 < residual.std() < 0.06                                       # the noise level, in units
    with pytest.raises(ConfigError, match="n_obs"):
        draw(traj, "train", 1.0, 4.0, 10, 5, 0.0, 0)


@pytest.mark.parametrize(("change", "key"), [({"observed": "velocities"}, "config.observed"),
                                             ({"encoder": "lstm"}, "config.encoder"),
                                             ({"context": 15.0, "forecast": 10.0}, "config.context"),
                                             ({"noise": -1.0}, "config.noise"), ({"sims": 0}, "config.sims")])
def test_config_mistakes_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        LatentODEConfig.from_dict(change)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LatentODEConfig, LocalReporter, dict[str, float]]:
    """A latent ODE trained 600 steps on the linear system (about 30 s)."""
    reporter = LocalReporter(tmp_path_factory.mktemp("linear") / "run", progress=False)
    final = run(LINEAR, reporter)
    return LatentODEConfig.from_dict(LINEAR), reporter, final


def test_a_known_linear_system_is_recovered(trained: tuple[LatentODEConfig, LocalReporter, dict[str, float]]) -> None:
    """Data from dz/dt = A z (a damped rotation) seen through a linear map: the model interpolates
    and extrapolates the held-out test points to an RMSE under 0.06, a tenth of the channels' RMS
    (0.58); 600 steps reach about 0.03."""
    _, _, final = trained
    rmse = [final[f"test/{w}_rmse_x{c}"] for w in ("interp", "extrap") for c in (1, 2, 3)]
    assert max(rmse) < 0.06, final
    # RK4 (4 evaluations a step) over at most 8 s at 0.4 s, plus the cubic interpolation's end slopes
    assert 4 * 15 <= final["nfe_per_step"] <= 6 * 20


def test_irregular_times_are_honoured(trained: tuple[LatentODEConfig, LocalReporter, dict[str, float]]) -> None:
    """The same observed values placed at other times (a redraw of the context times) give other,
    worse predictions: the encoder reads the times, not only the order of the values."""
    cfg, reporter, _ = trained
    sets, _ = observation_sets(cfg)
    mean, std = normalisation(sets["train"], cfg.system)
    model = build(cfg, mean, std)
    checkpoint.load_parts(reporter.checkpoint_path, {"model": model})
    batch = to_batch(sets["test"], mean, std, torch.device("cpu"))
    interp, _ = errors(model, batch)
    honest = float(((interp - batch.x_interp) ** 2).mean())
    rng = np.random.default_rng(0)
    moved = batch.t_obs.clone()
    for i in range(len(moved)):
        moved[i, :10] = torch.as_tensor(np.sort(rng.choice(20, 10, replace=False)) * 0.2, dtype=moved.dtype)
    shuffled = type(batch)(moved, *[getattr(batch, f) for f in ("x_obs", "mask", "t_interp", "x_interp",
                                                                  "t_forecast", "x_forecast")])
    interp_moved, _ = errors(model, shuffled)
    assert not torch.allclose(interp, interp_moved)
    assert float(((interp_moved - batch.x_interp) ** 2).mean()) > 2 * honest


def test_predictions_use_the_context_only_and_not_the_batch(
        trained: tuple[LatentODEConfig, LocalReporter, dict[str, float]]) -> None:
    """Forecast observations never reach the encoder, and a trajectory's prediction does not depend
    on the other trajectories of its batch (latent ODE and GRU baseline)."""
    cfg, reporter, _ = trained
    sets, _ = observation_sets(cfg)
    batch = to_batch(sets["test"], 0.0, 1.0, torch.device("cpu"))
    ones = (np.zeros(3), np.ones(3))
    for model in (build(cfg, *ones), build(LatentODEConfig.from_dict({**LINEAR, "model": "gru"}), *ones)):
        torch.manual_seed(0)
        model.eval()
        interp, extrap = errors(model, batch)
        changed = type(batch)(batch.t_obs, batch.x_obs.clone(), batch.mask, batch.t_interp, batch.x_interp,
                              batch.t_forecast, batch.x_forecast)
        changed.x_obs[:, ~batch.mask] += 10.0                           # the forecast window's observations
        assert torch.equal(errors(model, changed)[1], extrap)
        alone = errors(model, batch.rows(torch.tensor([0])))
        assert torch.allclose(alone[0], interp[:1], atol=1e-5) and torch.allclose(alone[1], extrap[:1], atol=1e-5)


def test_the_gru_baseline_trains_without_a_kl(tmp_path: Path) -> None:
    reporter = LocalReporter(tmp_path / "gru", progress=False)
    final = run({**LINEAR, "model": "gru", "steps": 40, "report_every": 20}, reporter)
    assert "kl" not in final and "test/elbo" not in final and np.isfinite(final["test/extrap_mse"])
    assert final["best_val_extrap_mse"] <= reporter.history[0]["val_extrap_mse"]


TWOBODY = {"system": "twobody", "dataset": "simple_TBP_planar_10_train", "t_end": 8.0, "dt": 0.1, "context": 3.0,
           "forecast": 2.0,
           "n_obs": 8, "n_forecast_obs": 4, "windows": 2, "noise": 0.01, "latent": 4, "enc_hidden": 8, "width": 16,
           "dec_width": 8, "substep": 0.2, "time_scale": 1.0, "steps": 4, "report_every": 2, "batch_size": 4}


def test_twobody_trajectories_are_the_datasets_orbits(tmp_path: Path) -> None:
    """Propagated from the dataset's elements, the states at its own sample times are its samples
    (canonical units), for a rotated set too; the orbits conserve energy and angular momentum, which
    the drift metric reads as 0 (and as small from positions alone, by central differences)."""
    from trainables.twobody.constants import DU, TU, VU
    from trainables.twobody.dataset import load_named

    for name in ("complex_TBP_planar_10_train", "complex_TBP_planar_rotated_10_test"):
        ds = load_named(name, tmp_path)
        arrays = ds.arrays()
        for i in (0, 7):  # an orbit's own grid: its period / 360 (s) -> TU
            dt = float(arrays.t[i, 1] - arrays.t[i, 0]) / TU
            traj = twobody(ds, 40, dt)
            expected = arrays.states[i, :40][:, [0, 1, 3, 4]] / np.array([DU, DU, VU, VU])
            assert np.allclose(traj.x[i], expected, rtol=0, atol=1e-9), name
        assert traj.channels == ("x", "y", "vx", "vy") and traj.content_hash == ds.content_hash
    traj = twobody(load_named("complex_TBP_planar_10_train", tmp_path), 200, 0.05)
    assert max(orbit_drifts(traj.x, traj.x, 0.05).values()) < 1e-9
    positions = traj.x[..., :2]  # velocities by differences: the truth's own floor
    assert max(orbit_drifts(positions, positions, 0.05).values()) < 0.01
    slowed = traj.x * np.r_[1.0, 1.0, 0.9, 0.9]  # 10 % slower than the orbit: not a Kepler orbit
    assert orbit_drifts(slowed, traj.x, 0.05)["test/energy_drift"] > 0.05
    standing = np.broadcast_to(traj.x.mean(1, keepdims=True), traj.x.shape)  # the mean state, standing: no drift
    drifts = orbit_drifts(standing, traj.x, 0.05)
    assert drifts["test/energy_drift"] == 0 == drifts["test/angmom_drift"]
    assert drifts["test/energy_error"] > 0.5 and drifts["test/angmom_error"] > 0.2
    with pytest.raises(ConfigError, match="planar"):
        twobody(load_named("complex_TBP_3D_10_test", tmp_path), 10, 0.1)


def test_the_state_ode_integrates_from_the_first_observation_both_ways(tmp_path: Path) -> None:
    """With the exact field (gravity, mu = 1) in place of the learned one, the state-space baseline
    started from a noise-free first observation reproduces the true orbit at query times before it
    (integrated backwards) and after it, through the normalisation."""
    cfg = LatentODEConfig.from_dict({**TWOBODY, "datasets_root": str(tmp_path), "model": "state_ode",
                                     "noise": 0.0, "substep": 0.02})
    sets, _ = observation_sets(cfg)
    mean, std = normalisation(sets["train"], cfg.system)
    assert (mean == 0).all() and std[0] == std[1] and std[2] == std[3]  # isotropic in the plane
    model = build(cfg, mean, std)

    class Gravity(torch.nn.Module):
        def forward(self, y: torch.Tensor) -> torch.Tensor:
            r = y[..., :3]
            return torch.cat([y[..., 3:], -r / r.norm(dim=-1, keepdim=True) ** 3], -1)

    model.field.field = Gravity()
    batch = to_batch(sets["test"], mean, std, torch.device("cpu"))
    assert (batch.t_interp.min(1).values < batch.t_obs[:, 0]).any()  # some queries precede the first observation
    interp, extrap = errors(model, batch)
    assert float((interp - batch.x_interp).abs().max()) < 1e-3
    assert float((extrap - batch.x_forecast).abs().max()) < 1e-3


@pytest.mark.parametrize(("change", "key"), [({"model": "state_ode", "observed": "positions"}, "config.model"),
                                             ({"model": "state_ode", "system": "pendulum"}, "config.model"),
                                             ({"dataset": "complex_TBP_planar_10_test"}, "config.dataset"),
                                             ({"dataset": "complex_TBP_3D_10_train"}, "config.dataset"),
                                             ({"dataset": "my_orbits"}, "config.dataset"),
                                             ({"n_obs": 31}, "config.n_obs.*3 TU at dt 0.1 TU"),
                                             ({"forecast": 6.0}, "config.context.*exceed.*8 TU")])
def test_twobody_config_mistakes_name_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        LatentODEConfig.from_dict({**TWOBODY, **change})


@pytest.mark.parametrize(("model", "observed"), [("latent_ode", "positions"), ("gru", "full"), ("state_ode", "full")])
def test_twobody_models_report_what_they_declare_and_evaluate_again(tmp_path: Path, model: str, observed: str) -> None:
    """Each model trains on two-body observations and reports exactly its declared metrics (the
    drifts among them); ``dynsweep evaluate``'s hook reproduces them from the final checkpoint and
    adds another dataset's under ``test/<name>/``."""
    config = {**TWOBODY, "datasets_root": str(tmp_path), "model": model, "observed": observed}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run(config, reporter)
    assert set(final) | {"step"} == LatentODEConfig.from_dict(config).metric_names()
    assert all(np.isfinite(v) for v in final.values())
    other = "simple_TBP_planar_rotated_10_test"
    again = evaluate_checkpoint(reporter.checkpoint_path, config, [other], tmp_path / "eval")
    assert {k: v for k, v in again.items() if "/" + other not in k} == {k: v for k, v in final.items()
                                                                          if k.startswith("test/")}
    assert {f"test/{other}/extrap_mse", f"test/{other}/energy_drift"} <= set(again)
    assert (tmp_path / "eval" / "trajectories.parquet").is_file()


def test_evaluate_normalises_as_training_did_under_a_changed_config(tmp_path: Path) -> None:
    """Another forecast window changes the windows (and so their statistics): the checkpoint's model
    keeps the training normalisation, so ``evaluate`` gives what the trained model gives on the new
    observations, for every model."""
    for model_name in ("latent_ode", "state_ode"):
        config = {**TWOBODY, "datasets_root": str(tmp_path), "model": model_name, "steps": 2, "report_every": 2}
        reporter = LocalReporter(tmp_path / model_name, progress=False)
        run(config, reporter)
        trained_cfg = LatentODEConfig.from_dict(config)
        model = build(trained_cfg, *normalisation(observation_sets(trained_cfg)[0]["train"], "twobody"))
        checkpoint.load_parts(reporter.checkpoint_path, {"model": model})
        changed = {**config, "forecast": 4.0, "obs_seed": 5}
        new_cfg = LatentODEConfig.from_dict(changed)
        new_sets, _ = observation_sets(new_cfg)
        assert not np.allclose(normalisation(new_sets["train"], "twobody")[1], model.normalisation()[1])
        expected = final_metrics(model, new_cfg, new_sets["test"], None)
        assert evaluate_checkpoint(reporter.checkpoint_path, changed, [], tmp_path / "eval") == expected


def test_the_state_ode_reads_the_context_only_and_not_the_batch(tmp_path: Path) -> None:
    cfg = LatentODEConfig.from_dict({**TWOBODY, "datasets_root": str(tmp_path), "model": "state_ode"})
    sets, _ = observation_sets(cfg)
    torch.manual_seed(0)
    model = build(cfg, *normalisation(sets["train"], cfg.system))
    batch = to_batch(sets["test"], *model.normalisation(), torch.device("cpu"))
    interp, extrap = errors(model, batch)
    changed = type(batch)(batch.t_obs, batch.x_obs.clone(), batch.mask, batch.t_interp, batch.x_interp,
                          batch.t_forecast, batch.x_forecast)
    changed.x_obs[:, ~batch.mask] += 10.0
    assert torch.equal(errors(model, changed)[1], extrap)
    alone = errors(model, batch.rows(torch.tensor([3])))
    assert torch.allclose(alone[0], interp[3:4], atol=1e-4) and torch.allclose(alone[1], extrap[3:4], atol=1e-4)
