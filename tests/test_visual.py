"""The visual world-model family: rendering, frame datasets, model shapes, every predictor
learning, the Hamiltonian predictor's energy, both training modes and two-phase training.
Its sweep, artefacts and plots are in ``test_plots_worldmodels_regression.py``; its contract
(resume bit for bit, evaluate, artefacts) in ``test_family_contract.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from search.cli import main
from trainables.common import checkpoint
from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.visual.config import VisualConfig
from trainables.visual.data import FrameSpec, load, write
from trainables.visual.metrics import latent_energy_drift, validation
from trainables.visual.model import PREDICTORS, VisualWorldModel, build_predictor
from trainables.visual.render import centre_of_mass, project, radius, render
from trainables.visual.train import build, run
from trainables.worldmodels.data import WorldSpec
from trainables.worldmodels.envs import ENVS

TINY = {"seqs": 16, "seq_steps": 20, "size": 32, "hidden": 16, "latent_channels": 4, "horizon": 3, "batch_size": 8,
        "eval_horizons": [1, 5], "lr": 3e-3}


@pytest.mark.parametrize("env", ["pendulum", "oscillator", "spaceship"])
@pytest.mark.parametrize(("size", "colour"), [(16, "grey"), (32, "rgb"), (64, "grey")])
def test_the_drawn_disc_sits_where_the_state_says(env: str, size: int, colour: str) -> None:
    """Centre of mass of the pixels against the projected position, for states of another seed and
    random orientations (angles, positions around the whole view)."""
    rng = np.random.default_rng(11)
    n, spec = 40, FrameSpec(WorldSpec(env=env), size=size, colour=colour)
    e = ENVS[env]
    params = e.draw_params(rng, n)
    states = e.draw_initial(rng, n, params)[:, None, :].repeat(2, 1)
    if env == "pendulum":
        states[:, 1, 0] = rng.uniform(-np.pi, np.pi, n)               # any orientation of the rod
    elif env == "spaceship":
        phi = rng.uniform(0, 2 * np.pi, n)
        states[:, 1, :2] = 1.9 * np.stack([np.cos(phi), np.sin(phi)], 1)
    else:
        states[:, 1, 0] = rng.uniform(-3.5, 3.5, n)
    frames = render(env, states, params, spec.param_max(), size, colour)
    assert frames.shape == (n, 2, 3 if colour == "rgb" else 1, size, size) and frames.dtype == np.uint8
    where = project(env, states, {k: v[:, None] for k, v in params.items()}, spec.param_max(), size)
    inside = ((where > radius(size) + 1) & (where < size - radius(size) - 1)).all(-1)
    assert inside.all()                                               # the view holds the object
    assert np.abs(centre_of_mass(frames) - where).max() < 0.1         # to a tenth of a pixel
    if env == "pendulum":                                             # theta = 0: straight below the pivot
        down = project(env, np.zeros((1, 2)), {"l": np.ones(1)}, spec.param_max(), size)[0]
        assert down[0] == pytest.approx(size / 2) and down[1] > size / 2


def test_same_seed_same_bytes_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = FrameSpec(WorldSpec(env="pendulum", seqs=4, steps=10, seed=3), size=16)
    a, b = write(spec, tmp_path / "a"), write(spec, tmp_path / "b")
    for split in ("train", "val", "test"):
        assert (a / f"{split}.parquet").read_bytes() == (b / f"{split}.parquet").read_bytes()
    other = write(FrameSpec(WorldSpec(env="pendulum", seqs=4, steps=10, seed=4), size=16), tmp_path / "a")
    first, second = load(a, "train"), load(other, "train")
    assert first.frames.shape == (4, 11, 1, 16, 16) and not np.array_equal(first.frames, second.frames)
    code = main(["data", "frames", "--env", "pendulum", "--seqs", "4", "--steps", "10", "--seed", "3",
                 "--size", "16", "--root", str(tmp_path / "cli")])
    assert code == 0
    assert ((tmp_path / "cli" / spec.name / "train.parquet").read_bytes() == (a / "train.parquet").read_bytes())
    assert "test 2 sequences x 11 frames of 16x16 grey" in capsys.readouterr().out
    from trainables.common.parquet_store import read_dynsweep_metadata

    assert read_dynsweep_metadata(a / "train.parquet")["out_of_view"] == 0   # the pendulum stays in view
    assert main(["data", "ls", "--root", str(tmp_path / "cli")]) == 0
    assert "frames, env pendulum: train 4 / val 2 / test 2 sequences x 11 frames of 16x16 grey" in \
        capsys.readouterr().out
    for bad in (["--env", "threebody"], ["--env", "pendulum", "--size", "20"]):
        with pytest.raises(SystemExit):
            main(["data", "frames", "--seqs", "4", *bad, "--root", str(tmp_path / "cli")])
        assert "allowed" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "key"), [({"latent_channels": 5}, "latent_channels"),
                                             ({"method": "leapfrog"}, "config.method"),
                                             ({"freeze": ["encoder", "decoder", "predictor"]}, "config.freeze"),
                                             ({"freeze": ["vae"]}, "config.freeze"),
                                             ({"freeze": ["encoder", "decoder"], "predictor_weight": 0},
                                              "nothing would train"),
                                             ({"val_horizon": 20}, "config.val_horizon"),
                                             ({"horizon": 20}, "config.horizon"),
                                             ({"eval_horizons": [30]}, "config.eval_horizons"),
                                             ({"env": "threebody"}, "threebody"),
                                             ({"size": 20}, "size"), ({"mode": "joint"}, "config.mode")])
def test_config_mistakes_are_refused_naming_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        VisualConfig.from_dict({**TINY, **change})
    VisualConfig.from_dict(TINY)


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_shapes(predictor: str) -> None:
    torch.manual_seed(0)
    model = VisualWorldModel(3, 2, 8, 16, 3, build_predictor(predictor, 8, 16, 2, "softplus", "rk4", 2)).eval()
    model.requires_grad_(False)
    frames = torch.rand(5, 2, 3, 32, 32)
    mu, logvar = model.encode(frames)
    assert mu.shape == logvar.shape == (5, 8, 4, 4)
    s0 = model.state(mu)
    states = model.rollout(s0, torch.randint(0, 3, (5, 7)), 0.05)
    assert states.shape == (5, 7, 8, 4, 4)
    decoded = model.decode(states)
    assert decoded.shape == (5, 7, 3, 32, 32) and 0 <= float(decoded.min()) <= float(decoded.max()) <= 1


@pytest.mark.parametrize("predictor", PREDICTORS)
def test_every_predictor_learns(tmp_path: Path, predictor: str) -> None:
    """100 steps on 32x32 pendulum frames: the validation pixel MSE falls well below the untrained
    model's (the same initial weights: same seed)."""
    config = {**TINY, "predictor": predictor, "steps": 100, "report_every": 50, "datasets_root": str(tmp_path)}
    cfg = VisualConfig.from_dict(config)
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run(config, reporter)
    folder = tmp_path / cfg.frame_spec().name
    torch.manual_seed(cfg.seed)
    untrained = build(cfg, load(folder, "train"))
    before = validation(untrained, load(folder, "val"), cfg.horizon, torch.device("cpu"))["val_pixel_mse"]
    assert final["best_val_pixel_mse"] < 0.7 * before, (before, [r["val_pixel_mse"] for r in reporter.history])
    assert np.isfinite(final["test/pixel_mse_h5"]) and final["test/recon_mse"] < before


def test_hamiltonian_leapfrog_keeps_its_energy(tmp_path: Path) -> None:
    """The learned H along 200 latent steps without action changes by less than 2 % of the energy
    exchanged (the range of the potential along the rollout)."""
    config = {**TINY, "predictor": "spatial_hamiltonian", "method": "leapfrog", "steps": 30, "report_every": 30,
              "datasets_root": str(tmp_path)}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    final = run(config, reporter)
    assert final["test/latent_energy_drift"] < 0.02
    cfg = VisualConfig.from_dict(config)
    test = load(tmp_path / cfg.frame_spec().name, "test")
    model = build(cfg, test)
    checkpoint.load_parts(reporter.checkpoint_path, {"model": model})
    euler = build(VisualConfig.from_dict({**config, "method": "euler", "substeps": 1}), test)
    euler.load_state_dict(model.state_dict())
    drift_euler = latent_energy_drift(euler, test, 200, torch.device("cpu"))
    assert final["test/latent_energy_drift"] < drift_euler          # the symplectic scheme is what keeps it


def test_detached_mode_has_two_optimisers_and_freezing_keeps_parts(tmp_path: Path) -> None:
    config = {**TINY, "mode": "detached", "steps": 6, "report_every": 3, "datasets_root": str(tmp_path)}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run(config, reporter)
    saved = checkpoint.load(reporter.checkpoint_path)
    assert {"optimizer_vae", "optimizer_predictor"} <= set(saved) and "optimizer" not in saved
    frozen = LocalReporter(tmp_path / "frozen", progress=False)
    run({**config, "freeze": ["predictor"]}, frozen)
    saved = checkpoint.load(frozen.checkpoint_path)
    assert "optimizer_vae" in saved and "optimizer_predictor" not in saved


def test_evaluate_refuses_frames_unlike_the_training_frames(tmp_path: Path) -> None:
    from trainables.visual.train import evaluate_checkpoint

    config = {**TINY, "steps": 2, "report_every": 2, "datasets_root": str(tmp_path)}
    reporter = LocalReporter(tmp_path / "run", progress=False)
    run(config, reporter)
    with pytest.raises(ConfigError, match="--set: frames of env pendulum, 16px grey.*trained on env pendulum, 32px"):
        evaluate_checkpoint(reporter.checkpoint_path, {**config, "size": 16}, [], tmp_path / "eval")
    other = write(FrameSpec(WorldSpec(env="pendulum", seqs=4, steps=20, seed=9, param_ranges=(("l", 0.5, 3.0),)),
                            size=32), tmp_path)
    with pytest.raises(ConfigError, match="--datasets .*field of view"):
        evaluate_checkpoint(reporter.checkpoint_path, config, [str(other)], tmp_path / "eval2")


def test_two_phase_training(tmp_path: Path) -> None:
    """Phase 1 trains the VAE alone (predictor_weight 0); phase 2 starts encoder and decoder from its
    checkpoint, frozen, and trains a Hamiltonian predictor: the VAE stays bit for bit phase 1's."""
    root = str(tmp_path / "data")
    phase1 = LocalReporter(tmp_path / "phase1", progress=False)
    run({**TINY, "predictor_weight": 0.0, "steps": 10, "report_every": 5, "datasets_root": root}, phase1)
    assert "best_val_recon_mse" in phase1.history[-1]            # the VAE alone is judged by its reconstruction
    phase2 = LocalReporter(tmp_path / "phase2", progress=False)
    config = {**TINY, "predictor": "spatial_hamiltonian", "init_from": str(tmp_path / "phase1"),
              "freeze": ["encoder", "decoder"], "steps": 10, "report_every": 5, "datasets_root": root}
    run(config, phase2)
    first = checkpoint.load(phase1.checkpoint_path)["best"]["weights"]
    second = checkpoint.load(phase2.checkpoint_path)["model"]
    vae = [k for k in first if k.split(".")[0] in ("encoder", "transform", "decoder")]
    assert vae and all(torch.equal(first[k], second[k]) for k in vae)
    assert any(k.startswith("predictor.") for k in second)
    with pytest.raises(ConfigError, match="init_parts: the 'encoder' of .* does not fit"):
        run({**config, "latent_channels": 6}, LocalReporter(tmp_path / "bad", progress=False))
    with pytest.raises(ConfigError, match="init_from: .* holds no checkpoint"):
        run({**config, "init_from": str(tmp_path)}, LocalReporter(tmp_path / "bad2", progress=False))
