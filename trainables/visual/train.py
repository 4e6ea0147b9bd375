"""The visual family's entry point: ``run(config, reporter)`` trains and evaluates one trial.

Each step draws ``batch_size`` windows of ``context + horizon`` frames (a training sequence and
a start) with the actions after the context, and takes one step of the mode's loss
(:mod:`.losses`): ``hgn`` with one Adam over every trained part, ``detached`` with one Adam for
the VAE (encoder, state transform, decoder) and one for the predictor (and the action
embedding). Frozen parts (``freeze``) are not trained; ``init_from`` starts ``init_parts`` from
another run's checkpoint (its best-on-validation weights) before a fresh start. Every
``report_every`` steps: ``train_loss``, ``recon_loss``, ``pred_loss``, ``kl``, ``val_pixel_mse``
(the sweep metric), ``val_recon_mse``, ``lr``, ``steps_per_s``, ``best_*``, with a checkpoint; at
the end the best-on-validation model (by ``cfg.selection_metric``) is evaluated (:mod:`.metrics`).
Gradients are clipped to norm 10 per optimiser.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from trainables.common import checkpoint
from trainables.common.best import BestModel, evaluated_state, load_evaluated
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.lr import scheduled_lr
from trainables.common.metric_names import under_dataset
from trainables.common.nn import pick_device
from trainables.common.reporter import Reporter
from trainables.worldmodels.envs import ENVS

from .config import VisualConfig, check_length, dataset_folder
from .data import Frames, FrameSpec, load
from .losses import LOSSES
from .metrics import as_float, evaluate, validation
from .model import PARTS, VisualWorldModel, build_predictor


def run(config: Mapping[str, Any] | VisualConfig, reporter: Reporter) -> dict[str, Any]:
    """Train one visual world model; returns the last report's metrics."""
    cfg = VisualConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    folder = dataset_folder(cfg)
    train, val, test = (load(folder, split) for split in ("train", "val", "test"))
    check_length(cfg, train.frames.shape[1])
    model = build(cfg, train).to(device)
    if cfg.init_from is not None:
        init_parts(model, Path(cfg.init_from), cfg.init_parts)
    optimizers = _optimizers(cfg, model)
    frames = torch.as_tensor(train.frames, device=device)             # uint8, converted per batch
    actions = torch.as_tensor(train.actions, device=device)
    rng = torch.Generator().manual_seed(cfg.seed)
    state = {"model": model, "rng": rng, **optimizers}
    step, extras = checkpoint.restore_training(reporter.restore_dir(), state)
    best = BestModel.from_state(cfg.patience, extras.get("best"))
    reporter.tags({"dataset": folder.name, "dataset_sha256": train.content_hash}
                  | ({} if cfg.continuous else {"dt_generalisation": "not applicable (discrete-time predictor)"}))
    loss_fn, rows, t0, last = LOSSES[cfg.mode], [], time.perf_counter(), {}
    while step < cfg.steps:
        lr = scheduled_lr(cfg.lr_schedule, cfg.lr, cfg.min_lr, step / cfg.steps)
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        window, acts = _windows(frames, actions, cfg.context, cfg.horizon, cfg.batch_size, rng)
        loss, parts = loss_fn(model, as_float(window, device), acts, train.dt, cfg.beta, cfg.free_bits,
                              cfg.predictor_weight)
        if not torch.isfinite(loss):
            raise DivergedError(f"loss is {loss.item()}", step)
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers.values():
            torch.nn.utils.clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], 10.0)
            opt.step()
        step += 1
        rows.append({"train_loss": loss.item(), **parts})
        if step % cfg.report_every and step != cfg.steps:
            continue
        last = {"epoch": step * cfg.batch_size / len(train.frames), "total_steps": cfg.steps, "lr": lr,
                **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]},
                **validation(model, val, cfg.val_horizon, device),
                "steps_per_s": len(rows) / max(time.perf_counter() - t0, 1e-9)}
        best.observe(last[cfg.selection_metric], step, model)
        last.update(best.metrics(cfg.selection_metric, best.stop and step < cfg.steps))
        final = best.stop or step == cfg.steps
        if final:
            best.restore(model)  # the best-on-validation model is the one evaluated (and checkpointed)
            last.update(_final_metrics(cfg, model, test, reporter.artifact_dir(), device))
        with tempfile.TemporaryDirectory(prefix="dynsweep-ckpt-") as ckpt:
            checkpoint.save_training(ckpt, cfg.steps if final else step, state, cfg.to_dict(), best=best.state())
            reporter.report(step, last, ckpt)
        rows, t0 = [], time.perf_counter()
        if final:
            break
    return last


def build(cfg: VisualConfig, data: Frames) -> VisualWorldModel:
    """The model of ``cfg`` for frames like ``data``'s, with ``freeze``'s parts frozen."""
    env = ENVS[data.spec.world.env]
    predictor = build_predictor(cfg.predictor, cfg.latent_channels, cfg.hidden, cfg.depth, cfg.activation,
                                cfg.method, cfg.substeps)
    model = VisualWorldModel(data.spec.channels, cfg.context, cfg.latent_channels, cfg.hidden, env.n_actions,
                             predictor)
    for part in cfg.freeze:
        for name in PARTS[part]:
            getattr(model, name).requires_grad_(False)
    return model


def init_parts(model: VisualWorldModel, source: Path, parts: Sequence[str]) -> None:
    """Load ``parts`` of ``model`` from the checkpoint in ``source`` (a checkpoint folder, or a
    ``dynsweep train`` run folder with one in ``checkpoint/``): its best-on-validation weights.

    Raises:
        ConfigError: no checkpoint there, or a part that does not fit (another size or predictor).
    """
    folder = source / "checkpoint" if (source / "checkpoint" / checkpoint.CHECKPOINT_FILE).is_file() else source
    if not (folder / checkpoint.CHECKPOINT_FILE).is_file():
        raise ConfigError(f"config.init_from: {source} holds no checkpoint (a trial's checkpoint folder, or a "
                          "`dynsweep train` run folder)")
    weights = evaluated_state(folder).get("model")
    if not isinstance(weights, dict):
        raise ConfigError(f"config.init_from: {folder} is not a checkpoint of a model (no weights in it)")
    for part in parts:
        for name in PARTS[part]:
            mine = getattr(model, name).state_dict()
            theirs = {k.removeprefix(f"{name}."): v for k, v in weights.items() if k.startswith(f"{name}.")}
            if set(theirs) != set(mine) or any(theirs[k].shape != mine[k].shape for k in mine):
                raise ConfigError(f"config.init_parts: the {part!r} of {folder} does not fit this config "
                                  f"(another latent_channels, hidden, context, colour or predictor?)")
            getattr(model, name).load_state_dict(theirs)


def _optimizers(cfg: VisualConfig, model: VisualWorldModel) -> dict[str, torch.optim.Optimizer]:
    """``hgn``: one Adam over every trained part; ``detached``: one for the VAE, one for the predictor."""
    groups = {"optimizer": list(model.parameters())} if cfg.mode == "hgn" else {
        "optimizer_vae": [p for part in ("encoder", "decoder") for n in PARTS[part]
                          for p in getattr(model, n).parameters()],
        "optimizer_predictor": [p for n in PARTS["predictor"] for p in getattr(model, n).parameters()]}
    return {name: torch.optim.Adam(trained, lr=cfg.lr) for name, params in groups.items()
            if (trained := [p for p in params if p.requires_grad])}


def _windows(frames: torch.Tensor, actions: torch.Tensor, context: int, horizon: int, batch: int,
             rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: frames ``(B, K + H, C, S, S)`` uint8 and the actions after the context ``(B, H)``."""
    n, t_len = frames.shape[:2]
    seq = torch.randint(0, n, (batch,), generator=rng).to(frames.device)
    start = torch.randint(0, t_len - context - horizon + 1, (batch,), generator=rng).to(frames.device)
    idx = start[:, None] + torch.arange(context + horizon, device=frames.device)
    return frames[seq[:, None], idx], actions[seq[:, None], idx[:, context - 1:-1]]


def _check_view(data: FrameSpec, trained: FrameSpec, where: str) -> None:
    """Refuse frames that differ from the training frames in env, size, colour or field of view.

    Raises:
        ConfigError: naming ``where`` and both.
    """
    have = (data.world.env, data.size, data.colour, data.param_max())
    want = (trained.world.env, trained.size, trained.colour, trained.param_max())
    if have != want:
        raise ConfigError(f"{where}: frames of env {have[0]}, {have[1]}px {have[2]}, field of view set by {have[3]}; "
                          f"the model was trained on env {want[0]}, {want[1]}px {want[2]}, field of view {want[3]}")


def _final_metrics(cfg: VisualConfig, model: VisualWorldModel, test: Frames, artifact_dir: Path,
                   device: torch.device) -> dict[str, float]:
    return evaluate(model, test, cfg.eval_horizons, cfg.dt_factors, cfg.energy_steps, artifact_dir, device)


def evaluate_checkpoint(folder: Path, config: Mapping[str, Any], datasets: Sequence[str],
                        artifact_dir: Path) -> dict[str, float]:
    """The family's ``evaluate`` hook (``dynsweep evaluate``): the model of checkpoint ``folder``
    evaluated as at the end of training under ``config``, keyed ``test/<metric>``; each of
    ``datasets`` adds ``test/<name>/<metric>`` (artefacts under ``artifact_dir/<name>/``): ``train``
    or ``val`` (the run's own splits) or another frame dataset folder of the same environment and
    frame size (a path, or a name under the datasets folder; its test split)."""
    cfg = VisualConfig.from_dict(config)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data_folder = dataset_folder(cfg)
    test = load(data_folder, "test")
    trained = VisualConfig.from_dict(checkpoint.saved_config(folder))
    if trained.dataset is None and cfg.dataset is None:
        _check_view(test.spec, trained.frame_spec(), "--set")
    model = build(cfg, test).to(device)
    load_evaluated(folder, model)
    out = _final_metrics(cfg, model, test, artifact_dir, device)
    for name in datasets:
        if name in ("train", "val", "test"):
            data = load(data_folder, name)
        else:
            try:
                data = load(dataset_folder(dataclasses.replace(cfg, dataset=name)), "test")
            except ConfigError as err:
                raise ConfigError(f"--datasets {name}: {str(err).removeprefix('config.dataset: ')}; give train, val, "
                                  "test or a frame dataset folder of the same environment") from None
            _check_view(data.spec, test.spec, f"--datasets {name}")
            check_length(cfg, data.frames.shape[1])
        (artifact_dir / name).mkdir(parents=True, exist_ok=True)
        out.update(under_dataset(_final_metrics(cfg, model, data, artifact_dir / name, device), name))
    return out
