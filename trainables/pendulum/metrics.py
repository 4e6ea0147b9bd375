"""Chaos-aware test metrics of a trained sequence model, on held-out simulations.

- ``one_step_rmse_<theta1|theta2|omega1|omega2>``: RMSE of one predicted step (rad, rad/s;
  angle errors wrapped to [-pi, pi)); ``one_step_nrmse``: the same in the normalised encoding.
- ``rollout_nrmse_h<H>``: open loop from the first W states of each test simulation, feeding
  predictions back; the normalised RMSE at step H, averaged over simulations. Normalised RMSE
  (Vlachas et al. 2020) is ``sqrt(mean_d (x_d - x_d^true)^2 / sigma_d^2)`` over the 6-feature
  encoding (sin/cos of the angles, angular velocities), ``sigma_d`` the std of feature d over
  the test simulations (the attractor's spread): free of the +/- pi wrap.
- ``vpt_s``: valid prediction time, the first time that normalised RMSE exceeds
  ``vpt_threshold`` (0.5), averaged over simulations (a rollout that never exceeds it counts its
  full length); ``vpt_lyapunov`` = ``vpt_s * lyapunov_true``: in Lyapunov times.
- ``lyapunov_true``: the largest Lyapunov exponent (1/s) of the true system from the test
  simulations' states (:func:`.lyapunov.true_exponent`); ``lyapunov_model``: the same
  two-trajectory estimate on the learned model's open-loop map (windows perturbed by 1e-7 rad in
  theta1, renormalised every ``lyapunov_tau`` s, float64); ``lyapunov_ratio`` = model / true.
- ``energy_drift_rel``: |E(end of rollout) - E(start)| / (g ((m1 + m2) l1 + m2 l2)), mean over
  rollouts; ``energy_drift_rel_true`` is the reference data's over the same span.

Artefacts (formats in :mod:`.artifacts`): ``pendulum.rollout`` (true and predicted states of the
test rollouts, their normalised error, energies) and ``pendulum.lyapunov`` (the running exponent
estimates, to see their convergence).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables.common.artifacts import write_artifact

from .artifacts import LYAPUNOV, ROLLOUT
from .config import STATE_NAMES, PendulumConfig
from .dataset import PendulumDataset
from .export import export_model
from .lyapunov import LyapunovEstimate, benettin, true_exponent
from .model import SequenceModel
from .physics import Params, energy, wrap
from .windows import Chunk, encode, read_chunk


def _physical_windows(chunk: Chunk, starts: np.ndarray, window: int) -> torch.Tensor:
    return torch.from_numpy(chunk.states[starts[:, None] + np.arange(window)])


def _params(chunk: Chunk, rows: np.ndarray, use: bool) -> torch.Tensor | None:
    return torch.from_numpy(chunk.params[rows]) if use else None


def nrmse(pred: np.ndarray, true: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Normalised RMSE ``(...)`` of physical states ``(..., 4)`` in the 6-feature encoding."""
    return np.sqrt((((encode(pred) - encode(true)) / sigma) ** 2).mean(-1))


def evaluate(model: SequenceModel, ds: PendulumDataset, test_sims: np.ndarray, cfg: PendulumConfig,
             use_params: bool, artifact_dir: Path | None) -> dict[str, float]:
    """All test metrics (see the module docstring), keyed ``test/<name>``."""
    model = copy.deepcopy(model).to("cpu", torch.float64).eval()
    sims = test_sims[:cfg.eval_sims]
    chunk = read_chunk(ds, sims, cfg.window, 1, model.target, use_params)
    w, dt = cfg.window, float(ds.collect(ds.scan().select("dt").head(1))["dt"][0])
    sigma = encode(chunk.states).std(0)
    sigma = np.where(sigma > 1e-12, sigma, 1.0)
    out: dict[str, float] = {}

    # one step
    starts = np.random.default_rng(cfg.seed).choice(chunk.starts, min(cfg.val_windows, len(chunk.starts)),
                                                    replace=False)
    pred = model.predict(_physical_windows(chunk, starts, w), _params(chunk, starts, use_params))[:, 0].numpy()
    true = chunk.states[starts + w]
    err = pred - true
    err[:, :2] = wrap(err[:, :2])
    for j, name in enumerate(STATE_NAMES):
        out[f"test/one_step_rmse_{name}"] = float(np.sqrt((err[:, j] ** 2).mean()))
    out["test/one_step_nrmse"] = float(nrmse(pred, true, sigma).mean())

    # open-loop rollouts from the start of every test simulation
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(chunk.row_sim)) + 1, [len(chunk.states)]])
    firsts, lengths = bounds[:-1], np.diff(bounds)
    steps = int(min(max(cfg.horizons), lengths.min() - w))
    firsts = firsts[lengths - w >= 1]
    roll = model.rollout(_physical_windows(chunk, firsts, w), _params(chunk, firsts, use_params), steps).numpy()
    truth = chunk.states[firsts[:, None] + w + np.arange(steps)]
    curve = nrmse(roll, truth, sigma)  # (sims, steps)
    for h in cfg.horizons:
        out[f"test/rollout_nrmse_h{h}"] = float(curve[:, h - 1].mean()) if h <= steps else math.nan
    exceed = curve > cfg.vpt_threshold
    vpt = np.where(exceed.any(1), exceed.argmax(1), steps) * dt
    out["test/vpt_s"] = float(vpt.mean())
    p_end = Params(*(chunk.params[firsts, j] for j in range(4)))
    e0 = energy(chunk.states[firsts + w - 1], p_end)
    out["test/energy_drift_rel"] = float((np.abs(energy(roll[:, -1], p_end) - e0) / p_end.energy_scale()).mean())
    out["test/energy_drift_rel_true"] = float((np.abs(energy(truth[:, -1], p_end) - e0)
                                               / p_end.energy_scale()).mean())

    # Lyapunov exponents, true and learned, from the same states
    trues, learned = [], []
    for first in firsts[:cfg.lyapunov_sims]:
        params = Params(*(float(v) for v in chunk.params[first]))
        trues.append(true_exponent(chunk.states[first + w - 1], params, cfg.lyapunov_t_end, cfg.lyapunov_tau))
        learned.append(model_exponent(model, chunk.states[first:first + w], chunk.params[first] if use_params
                                      else None, dt, cfg.lyapunov_t_end, cfg.lyapunov_tau))
    lam_true = float(np.mean([e.exponent for e in trues]))
    lam_model = float(np.mean([e.exponent for e in learned]))
    out.update({"test/lyapunov_true": lam_true, "test/lyapunov_model": lam_model,
                "test/lyapunov_ratio": lam_model / lam_true if lam_true > 0 else math.nan,
                "test/vpt_lyapunov": out["test/vpt_s"] * max(lam_true, 0.0)})
    if artifact_dir is not None:
        p_roll = Params(*(chunk.params[firsts, j][:, None] for j in range(4)))
        energies = (energy(truth, p_roll), energy(roll, p_roll), e0[:, None], p_end.energy_scale())
        _write_artifacts(artifact_dir, chunk.row_sim[firsts], roll, truth, curve, energies, dt, lam_true,
                         cfg.vpt_threshold, trues, learned)
        export_model(model, chunk.states[starts[:8, None] + np.arange(w)],
                     chunk.params[starts[:8]] if use_params else None, artifact_dir)
    return out


def model_exponent(model: SequenceModel, window: np.ndarray, params: np.ndarray | None, dt: float, t_end: float,
                   tau: float, d0: float = 1e-7) -> LyapunovEstimate:
    """Largest Lyapunov exponent (1/s) of the model's open-loop map from ``window`` ``(W, 4)``.

    The state of the map is the whole window of W states; the separation is measured on its
    newest state (wrapped angle difference, angular velocity difference).
    """
    k = max(1, int(round(tau / dt)))
    p = torch.as_tensor(params, dtype=torch.float64).expand(2, -1) if params is not None else None

    def advance(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.stack([a, b])
        nxt = torch.cat([both, model.rollout(both, p, k)], 1)[:, -len(a):]
        return nxt[0], nxt[1]

    def separation(a: torch.Tensor, b: torch.Tensor) -> float:
        d = (b[-1] - a[-1]).numpy().copy()
        d[:2] = wrap(d[:2])
        return float(np.linalg.norm(d))

    ref = torch.as_tensor(window, dtype=torch.float64)
    pert = ref.clone()
    pert[:, 0] += d0
    return benettin(advance, ref, pert, separation, lambda a, b, f: a + f * (b - a), k * dt,
                    int(round(t_end / (k * dt))))


def _write_artifacts(folder: Path, sims: np.ndarray, roll: np.ndarray, truth: np.ndarray, curve: np.ndarray,
                     energies: tuple[np.ndarray, ...], dt: float, lam_true: float, threshold: float,
                     trues: list[LyapunovEstimate], learned: list[LyapunovEstimate]) -> None:
    """``pendulum.rollout`` and ``pendulum.lyapunov`` (see :mod:`.artifacts`); ``energies`` is
    (true (sims, steps), predicted (sims, steps), start (sims, 1), scale (sims,)) in J."""
    n, steps, _ = roll.shape
    cols: dict[str, Any] = {"sim_id": np.repeat(sims, steps).astype(np.int32),
                            "step": np.tile(np.arange(1, steps + 1, dtype=np.int32), n)}
    cols["t_s"] = cols["step"] * dt
    cols["t_lyapunov"] = cols["t_s"] * max(lam_true, 0.0)
    for j, name in enumerate(STATE_NAMES):
        cols[f"{name}_true"] = truth[..., j].reshape(-1)
        cols[f"{name}_pred"] = roll[..., j].reshape(-1)
    cols["nrmse"] = curve.reshape(-1)
    cols["vpt_threshold"] = np.full(n * steps, threshold)
    e_true, e_pred, e0, scale = energies
    scale = np.broadcast_to(np.asarray(scale, dtype=float).reshape(-1, 1), (n, 1))
    cols["energy_true_j"], cols["energy_pred_j"] = e_true.reshape(-1), e_pred.reshape(-1)
    cols["energy_drift_true_rel"] = ((e_true - e0) / scale).reshape(-1)
    cols["energy_drift_pred_rel"] = ((e_pred - e0) / scale).reshape(-1)
    write_artifact(folder, ROLLOUT, cols)
    rows = [(kind, i, float(t), float(v)) for kind, ests in (("true", trues), ("model", learned))
            for i, e in enumerate(ests) for t, v in zip(e.times, e.running)]
    if rows:
        system, start, t, exponent = zip(*rows)
        write_artifact(folder, LYAPUNOV, {"system": np.array(system), "start": np.array(start, dtype=np.int32),
                                          "t_s": np.array(t), "exponent": np.array(exponent)})
