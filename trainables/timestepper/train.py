"""The time-stepper family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Warm-up: the first ``history_len`` steps at ``dt_init`` periods fill the history and are
discarded. Then each epoch (one report, with a checkpoint) runs

1. **trajectory collection**: at the current state the network proposes dt; velocity Verlet takes
   the step; if the relative energy error is under ``energy_threshold`` the step is accepted
   (state, features kept); otherwise one optimiser step on that step's band loss and retry; at
   ``max_retries`` retries the trial fails with class ``retry_cap`` (never hangs);
2. **generalisation**: minibatches of accepted states, one optimiser step each on the band loss,
   until every accepted state's proposed step passes, i.e. its energy error lies in the band
   ``[band_low * energy_threshold, energy_threshold]`` (under the gate, and not wastefully far
   under it), or ``phase2_max_iters`` iterations.

Network, optimiser, trajectory and history persist across epochs. Reports ``acceptance_rate``
(accepted / attempted steps in the epoch), ``retrain_iterations``, ``phase2_iterations``,
``converged`` (1: phase 2 ended with every accepted state in the band), ``epoch_s`` (wall time),
``accepted_steps``, ``band_loss``, ``mean_dt_train`` (periods); the last adds the test metrics.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from trainables.common import checkpoint
from trainables.common.errors import ConfigError, TrialFailure
from trainables.common.reporter import Reporter

from .config import StepperConfig
from .features import History, analytic, feature_dim
from .nbody import System, energy, hierarchical_triple, kepler_pair
from .stepper import (
    StepNet,
    band_loss,
    integrate_fixed,
    integrate_learned,
    integrate_r32,
    match,
    step_error,
)

BUFFER = 4096
"""Accepted states kept for phase 2 (the most recent)."""


class RetryCapError(TrialFailure):
    """A step still fails the energy gate after ``max_retries`` retrainings."""

    failure_class = "retry_cap"


def make_system(cfg: StepperConfig) -> System:
    return kepler_pair(cfg.e, m2=cfg.m2) if cfg.system == "kepler" else hierarchical_triple(cfg.e, cfg.m3)


def run(config: Mapping[str, Any] | StepperConfig, reporter: Reporter) -> dict[str, Any]:
    """Train one learned time-stepper; returns the last report's metrics."""
    cfg = StepperConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    system = make_system(cfg)
    m = torch.as_tensor(system.m, dtype=torch.float64)
    q, v = torch.as_tensor(system.q), torch.as_tensor(system.v)
    e_scale = abs(float(energy(q, v, m)))
    hist_len = cfg.history_len if cfg.features == "history" else 1
    width = feature_dim("analytic", len(system.m), 1)
    net = _net(cfg, system)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history = History(hist_len, width)
    for _ in range(cfg.history_len):  # warm-up at dt_init, discarded
        history.push(analytic(q, v, m))
        q, v, _ = step_error(q, v, m, torch.tensor(net.log_dt0, dtype=torch.float64), e_scale)
    buffer: dict[str, list[torch.Tensor]] = {"q": [], "v": [], "x": []}
    rng = torch.Generator().manual_seed(cfg.seed)
    parts = {"net": net, "optimizer": optimizer, "rng": rng}
    epoch, saved = checkpoint.restore_training(reporter.restore_dir(), parts)
    if saved:
        q, v, history.rows = saved["q"], saved["v"], saved["history"]
        buffer = {k: list(b.unbind(0)) for k, b in saved["buffer"].items()}
    last: dict[str, Any] = {}
    while epoch < cfg.epochs:
        t0 = time.perf_counter()
        q, v, attempts, retries, losses, dts = _collect(net, optimizer, history, buffer, q, v, m, e_scale, cfg, epoch)
        phase2, converged = _generalise(net, optimizer, buffer, m, e_scale, cfg, rng, losses)
        epoch += 1
        last = {"epoch": epoch, "total_steps": cfg.epochs, "acceptance_rate": cfg.collect_steps / attempts,
                "retrain_iterations": retries, "phase2_iterations": phase2, "accepted_steps": len(buffer["q"]),
                "band_loss": float(np.mean(losses)) if losses else 0.0,
                "mean_dt_train": float(np.mean(dts)) / system.period,
                "converged": float(converged), "epoch_s": time.perf_counter() - t0,
                "steps_per_s": cfg.collect_steps / max(time.perf_counter() - t0, 1e-9)}
        if epoch == cfg.epochs:
            last.update(evaluate(net, system, cfg, reporter.artifact_dir()))
        if epoch % cfg.report_every == 0 or epoch == cfg.epochs:
            with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
                checkpoint.save_training(ckpt, epoch, parts, cfg.to_dict(), q=q, v=v, history=history.rows,
                                         buffer={k: torch.stack(b) for k, b in buffer.items()})
                reporter.report(epoch, last, ckpt)
    return last


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the network of checkpoint ``folder``
    evaluated as at the end of training under ``config`` (the saved config, possibly changed: another
    eccentricity ``e``, ``m2``/``m3``, more ``eval_orbits``). The test is an integration of the
    configured system, not a dataset, so ``datasets`` must be empty."""
    if datasets:
        raise ConfigError(f"--datasets {' '.join(datasets)}: the time-stepper is tested by integrating its system, "
                          "not on datasets; change the system with --set e=..., m2=..., m3=..., eval_orbits=...")
    cfg = StepperConfig.from_dict(config)
    torch.manual_seed(cfg.seed)
    system = make_system(cfg)
    net = _net(cfg, system)
    checkpoint.load_parts(folder, {"net": net})
    return evaluate(net, system, cfg, artifact_dir)


def _net(cfg: StepperConfig, system: System) -> StepNet:
    """The step-size network of ``cfg`` for ``system`` (its features' width, its initial log dt)."""
    return StepNet(feature_dim(cfg.features, len(system.m), cfg.history_len), cfg.width, cfg.depth, cfg.activation,
                   math.log(cfg.dt_init * system.period))


def _collect(net: StepNet, optimizer: torch.optim.Optimizer, history: History, buffer: dict[str, list[torch.Tensor]],
             q: torch.Tensor, v: torch.Tensor, m: torch.Tensor, e_scale: float, cfg: StepperConfig, epoch: int
             ) -> tuple[torch.Tensor, torch.Tensor, int, int, list[float], list[float]]:
    """Phase 1: take ``collect_steps`` accepted steps along the orbit from ``(q, v)``, retraining
    the net on a step until its energy error passes the gate; accepted states go to ``buffer``.
    Returns the new state, attempts, retrainings, band losses and the accepted dts."""
    attempts, retries, losses, dts = 0, 0, [], []
    for _ in range(cfg.collect_steps):
        x = history.with_current(analytic(q, v, m))
        for retry in itertools.count():
            attempts += 1
            log_dt = net(x)
            q1, v1, err = step_error(q, v, m, log_dt, e_scale)
            if float(err.detach()) <= cfg.energy_threshold:
                break
            if cfg.max_retries is not None and retry == cfg.max_retries:
                raise RetryCapError(f"step still has relative energy error {float(err.detach()):.2e} > "
                                    f"{cfg.energy_threshold:g} after {cfg.max_retries} retrainings", epoch)
            loss = band_loss(log_dt, err, cfg.energy_threshold, cfg.band_low)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            retries += 1
            losses.append(loss.item())
        for key, value in (("q", q), ("v", v), ("x", x.detach())):
            buffer[key] = (buffer[key] + [value])[-BUFFER:]
        history.push(analytic(q, v, m))
        q, v = q1.detach(), v1.detach()
        dts.append(float(torch.exp(log_dt.detach())))
    return q, v, attempts, retries, losses, dts


def _generalise(net: StepNet, optimizer: torch.optim.Optimizer, buffer: dict[str, list[torch.Tensor]],
                m: torch.Tensor, e_scale: float, cfg: StepperConfig, rng: torch.Generator, losses: list[float]
                ) -> tuple[int, bool]:
    """Phase 2: train on minibatches of the accepted states until every one's energy error lies in
    the band [band_low, 1] x threshold (or ``phase2_max_iters``); returns the iterations and whether
    every state passed (converged)."""
    phase2 = 0
    states = {k: torch.stack(vals) for k, vals in buffer.items()}
    batches = minibatches(len(states["q"]), cfg.batch_size, rng, cfg.phase2_sampling)
    while phase2 < cfg.phase2_max_iters:
        with torch.no_grad():
            _, _, errs = step_error(states["q"], states["v"], m, net(states["x"]), e_scale)
        if bool(((errs <= cfg.energy_threshold) & (errs >= cfg.band_low * cfg.energy_threshold)).all()):
            return phase2, True
        idx = next(batches)
        log_dt = net(states["x"][idx])
        err = step_error(states["q"][idx], states["v"][idx], m, log_dt, e_scale)[2]
        loss = band_loss(log_dt, err, cfg.energy_threshold, cfg.band_low)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        phase2 += 1
    with torch.no_grad():  # the last update may have brought every state into the band
        _, _, errs = step_error(states["q"], states["v"], m, net(states["x"]), e_scale)
    return phase2, bool(((errs <= cfg.energy_threshold) & (errs >= cfg.band_low * cfg.energy_threshold)).all())


def minibatches(n: int, batch_size: int, rng: torch.Generator, sampling: str) -> Iterator[torch.Tensor]:
    """Indices of phase-2 minibatches of ``n`` states, for ever: ``batch_size`` drawn uniformly
    (``with_replacement``), or consecutive slices of shuffled passes, so that every state comes once
    before any comes twice (``without_replacement``; batches of ``min(batch_size, n)``)."""
    if sampling == "with_replacement":
        while True:
            yield torch.randint(0, n, (batch_size,), generator=rng)
    size, order = min(batch_size, n), torch.empty(0, dtype=torch.long)
    while True:
        while len(order) < size:
            order = torch.cat([order, torch.randperm(n, generator=rng)])
        yield order[:size]
        order = order[size:]


def evaluate(net: StepNet, system: System, cfg: StepperConfig, artifact_dir: Path | None = None) -> dict[str, float]:
    """The learned stepper over ``eval_orbits``, then both baselines tuned to its maximum energy error;
    to ``artifact_dir``: the ``timestepper.dt_orbit`` artefact (the learned integration, step by step)."""
    trace: dict[str, list[float]] = {}
    learned = integrate_learned(net, system, cfg.eval_orbits, cfg.features, cfg.history_len, trace)
    target = learned.energy_error
    out = {"test/energy_error": target, "test/final_energy_error": learned.final_energy_error,
           "test/mean_dt": learned.mean_dt / system.period, "test/steps_per_orbit": learned.steps_per_orbit}
    dt = eta = math.nan
    if math.isfinite(target) and target > 0:
        dt, fixed = match(lambda x: integrate_fixed(system, cfg.eval_orbits, x), learned.mean_dt, target)
        eta0 = learned.mean_dt / math.sqrt(float(np.linalg.norm(system.q[0] - system.q[1])) ** 3 / system.m[:2].sum())
        eta, r32 = match(lambda x: integrate_r32(system, cfg.eval_orbits, x), eta0, target)
        # steps at exactly the target error, from the matched run (Verlet's error ~ x^2: steps ~ err^-1/2)
        fixed_steps = fixed.steps_per_orbit * math.sqrt(fixed.energy_error / target)
        r32_steps = r32.steps_per_orbit * math.sqrt(r32.energy_error / target)
        out.update({"test/fixed_dt": dt / system.period, "test/fixed_steps_per_orbit": fixed_steps,
                    "test/r32_eta": eta, "test/r32_steps_per_orbit": r32_steps,
                    "test/fixed_energy_error": fixed.energy_error, "test/r32_energy_error": r32.energy_error,
                    "test/steps_ratio_fixed": learned.steps_per_orbit / fixed_steps,
                    "test/steps_ratio_r32": learned.steps_per_orbit / r32_steps})
    if artifact_dir is not None:
        from .export import export_model

        export_model(net, system, cfg.features, cfg.history_len, artifact_dir)
    if artifact_dir is not None and trace:
        from trainables.common.artifacts import write_artifact

        from .artifacts import DT_ORBIT

        n, period = len(trace["t"]), system.period
        write_artifact(artifact_dir, DT_ORBIT, {
            "step": np.arange(n, dtype=np.int32), "t_periods": np.array(trace["t"]) / period, "r": trace["r"],
            "dt_learned_periods": np.array(trace["dt"]) / period,
            "dt_r32_periods": np.array(trace["r32"]) * eta / period, "dt_fixed_periods": np.full(n, dt / period),
            "energy_error": trace["energy_error"]})
    return out
