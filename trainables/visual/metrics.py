"""Validation and test metrics of a visual world model (pixel values in [0, 1]; MSE per pixel).

- ``val_pixel_mse``: windows of ``context + val_horizon`` frames tiling each validation sequence;
  the context encoded (posterior mean), rolled out open loop under the true actions, decoded: mean
  MSE over the last context frame (its reconstruction) and the ``val_horizon`` predicted frames
  (the sweep metric);
- ``val_recon_mse`` / ``test/recon_mse``: every frame from ``context - 1`` on encoded from the
  ``context`` frames ending at it and decoded (the VAE alone);
- ``test/pixel_mse_h<H>``: the open-loop rollout from each test sequence's start, the frame ``H``
  samples after the last context frame (``H = 1``: the first frame after the context); ``test/copy_last_mse_h<H>``: the same for a model that repeats the
  last context frame; ``test/*_mean``: the mean over horizons 1 .. max(eval_horizons);
- ``test/latent_energy_drift`` (``spatial_hamiltonian``): the learned ``H`` along ``energy_steps``
  latent steps without action from each test context: the mean over test sequences of
  ``max_t |H_t - H_0|`` over the mean over test sequences of the range of the potential energy
  along the rollout (the energy exchanged between V and T);
- ``test/dt_x<f>_mse`` (continuous predictors): from each test context, the reference simulation
  and the model both run :data:`DT_STEPS` samples of ``f`` times the data's dt without action;
  mean pixel MSE of the model's decoded frames against the rendered truth.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from trainables.common.artifacts import write_artifact
from trainables.worldmodels.envs import ENVS

from .artifacts import FRAMES, HORIZON_CURVE, STRIP_SEQS
from .data import Frames
from .losses import context_windows, per_frame_mse
from .model import SpatialHamiltonian, VisualWorldModel
from .render import render

DT_STEPS = 10
"""Samples rolled out at each changed dt."""
CHUNK = 32
"""Sequences evaluated at once."""


def as_float(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``uint8`` frames -> float32 in [0, 1] on ``device``."""
    return torch.as_tensor(frames, device=device).float() / 255.0


@torch.no_grad()
def open_loop(model: VisualWorldModel, frames: torch.Tensor, actions: torch.Tensor, dt: float) -> torch.Tensor:
    """Decoded frames ``(B, H + 1, C, S, S)`` of the rollout from the context ``frames[:, :K]``
    (posterior mean) under ``actions`` ``(B, H)``: the last context frame, then ``H`` predictions."""
    mu, _ = model.encode(frames[:, :model.context])
    s0 = model.state(mu)
    return model.decode(torch.cat([s0[:, None], model.rollout(s0, actions, dt)], 1))


@torch.no_grad()
def recon_mse(model: VisualWorldModel, frames: torch.Tensor) -> float:
    """Mean per-frame VAE reconstruction MSE over frames ``K - 1 ..`` of ``frames`` ``(B, T, C, S, S)``."""
    windows = context_windows(frames, model.context)
    mu, _ = model.encode(windows.flatten(0, 1))
    return float(((model.decode(model.state(mu)) - frames[:, model.context - 1:].flatten(0, 1)) ** 2).mean())


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]


def validation(model: VisualWorldModel, data: Frames, horizon: int, device: torch.device) -> dict[str, float]:
    """``val_pixel_mse`` and ``val_recon_mse`` of ``data`` (see the module docstring)."""
    k, n_frames = model.context, data.frames.shape[1]
    starts = range(0, n_frames - k - horizon + 1, horizon)
    pixel, recon, weights = [], [], []
    with evaluating(model):
        for part in _chunks(len(data.frames)):
            frames = as_float(data.frames[part], device)
            actions = torch.as_tensor(data.actions[part], device=device)
            pixel.append(np.mean([float(per_frame_mse(open_loop(model, frames[:, s:s + k + horizon], actions[
                :, s + k - 1:s + k - 1 + horizon], data.dt), frames[:, s + k - 1:s + k + horizon]).mean())
                for s in starts]))
            recon.append(recon_mse(model, frames))
            weights.append(len(frames))
    return {"val_pixel_mse": float(np.average(pixel, weights=weights)),
            "val_recon_mse": float(np.average(recon, weights=weights))}


@contextmanager
def evaluating(model: VisualWorldModel) -> Iterator[None]:
    """``model`` in eval mode (decoded frames clipped to [0, 1], no graph kept through the
    Hamiltonian's forces) for the block; its previous mode afterwards."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def evaluate(model: VisualWorldModel, data: Frames, eval_horizons: list[int], dt_factors: list[float],
             energy_steps: int, artifact_dir: Path, device: torch.device) -> dict[str, float]:
    """The ``test/...`` metrics of ``data`` (see the module docstring); writes the artefacts."""
    with evaluating(model):
        return _evaluate(model, data, eval_horizons, dt_factors, energy_steps, artifact_dir, device)


def _evaluate(model: VisualWorldModel, data: Frames, eval_horizons: list[int], dt_factors: list[float],
              energy_steps: int, artifact_dir: Path, device: torch.device) -> dict[str, float]:
    k, h_max = model.context, max(eval_horizons)
    errs, copies, recon, strip = [], [], [], None
    for part in _chunks(len(data.frames)):
        frames = as_float(data.frames[part], device)
        actions = torch.as_tensor(data.actions[part, k - 1:k - 1 + h_max], device=device)
        pred = open_loop(model, frames[:, :k + h_max], actions, data.dt)
        truth = frames[:, k - 1:k + h_max]
        errs.append(((pred - truth) ** 2).mean((2, 3, 4)).cpu().numpy())                   # (b, H + 1)
        copies.append(((truth[:, :1] - truth) ** 2).mean((2, 3, 4)).cpu().numpy())
        recon.append(recon_mse(model, frames) * len(frames))
        if strip is None:
            strip = (truth[:STRIP_SEQS], pred[:STRIP_SEQS])
    err, copy = np.concatenate(errs).mean(0), np.concatenate(copies).mean(0)                # (H + 1,)
    out = {"test/recon_mse": float(sum(recon) / len(data.frames)),
           "test/pixel_mse_mean": float(err[1:].mean()), "test/copy_last_mse_mean": float(copy[1:].mean())}
    for h in eval_horizons:
        out[f"test/pixel_mse_h{h}"], out[f"test/copy_last_mse_h{h}"] = float(err[h]), float(copy[h])
    if isinstance(model.predictor, SpatialHamiltonian):
        out["test/latent_energy_drift"] = latent_energy_drift(model, data, energy_steps, device)
    if model.predictor.continuous:
        out.update({f"test/dt_x{f:g}_mse": dt_mse(model, data, f, device) for f in dt_factors})
    _write_artifacts(artifact_dir, strip, err, copy, data.dt)
    return out


@torch.no_grad()
def _context_states(model: VisualWorldModel, data: Frames, device: torch.device) -> torch.Tensor:
    """The latent state (posterior mean) of every test sequence's context, ``(n, L, g, g)``."""
    return torch.cat([model.state(model.encode(as_float(data.frames[p, :model.context], device))[0])
                      for p in _chunks(len(data.frames))])


def latent_energy_drift(model: VisualWorldModel, data: Frames, steps: int, device: torch.device) -> float:
    """``test/latent_energy_drift`` of a ``spatial_hamiltonian`` model (see the module docstring)."""
    predictor = model.predictor
    assert isinstance(predictor, SpatialHamiltonian)
    with torch.no_grad(), evaluating(model):
        s0 = _context_states(model, data, device)
        states = torch.cat([s0[:, None], model.rollout(s0, torch.zeros(len(s0), steps, dtype=torch.long,
                                                                       device=device), data.dt)], 1)
        flat = states.flatten(0, 1)
        energy = predictor.energy(flat).unflatten(0, states.shape[:2])                     # (n, T + 1)
        potential = predictor.potential(flat.chunk(2, dim=1)[0]).unflatten(0, states.shape[:2])
    drift = (energy - energy[:, :1]).abs().amax(1).mean()
    exchanged = (potential.amax(1) - potential.amin(1)).mean().clamp(min=1e-12)
    return float(drift / exchanged)


def dt_mse(model: VisualWorldModel, data: Frames, factor: float, device: torch.device) -> float:
    """``test/dt_x<factor>_mse`` (see the module docstring)."""
    spec, k = data.spec, model.context
    env, dt = ENVS[spec.world.env], data.dt * factor
    start = data.states[:, k - 1]
    truth = env.rollout(start, np.zeros((len(start), DT_STEPS), dtype=int), data.params, dt, spec.world.substeps,
                        spec.world.scheme)[:, 1:]
    frames = render(spec.world.env, truth, data.params, spec.param_max(), spec.size, spec.colour)
    with torch.no_grad(), evaluating(model):
        s0 = _context_states(model, data, device)
        pred = model.decode(model.rollout(s0, torch.zeros(len(s0), DT_STEPS, dtype=torch.long, device=device), dt))
    return float(((pred - as_float(frames, device)) ** 2).mean())


def to_bytes(frames: torch.Tensor) -> list[bytes]:
    """Frames ``(n, C, S, S)`` in [0, 1] -> ``uint8`` bytes each."""
    arr = (frames.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [row.tobytes() for row in arr]


def _write_artifacts(folder: Path, strip: Any, err: np.ndarray, copy: np.ndarray, dt: float) -> None:
    truth, pred = strip
    n, h1, c, size = truth.shape[0], truth.shape[1], truth.shape[2], truth.shape[-1]
    seq, horizon = np.repeat(np.arange(n, dtype=np.int32), h1), np.tile(np.arange(h1, dtype=np.int32), n)
    write_artifact(folder, FRAMES, {"seq": seq, "horizon": horizon, "t": horizon * dt,
                                    "channels": np.full(n * h1, c, np.int32), "size": np.full(n * h1, size, np.int32),
                                    "frame_true": np.array(to_bytes(truth.flatten(0, 1)), dtype=object),
                                    "frame_pred": np.array(to_bytes(pred.flatten(0, 1)), dtype=object)})
    hs = np.arange(1, len(err), dtype=np.int32)
    write_artifact(folder, HORIZON_CURVE, {"horizon": hs, "t": hs * dt, "pixel_mse": err[1:],
                                           "copy_last_mse": copy[1:]})
