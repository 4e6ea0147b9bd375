"""Training windows: W past states -> the next K states, never across two simulations.

**Angle encoding.** Angles are stored unwrapped, but a model must not see 3.1 and -3.1 as far
apart, nor 0 and 2 pi as different. Inputs therefore carry ``(sin theta1, cos theta1,
sin theta2, cos theta2, omega1, omega2)`` (6 features per step, continuous across the wrap),
plus ``(l1, l2, m1, m2)`` when the parameters vary. Targets are either

- ``delta``: per step ``(wrap(theta1' - theta1), wrap(theta2' - theta2), omega1' - omega1,
  omega2' - omega2)`` with ``wrap`` to [-pi, pi): a crossing of +/- pi is a small step, or
- ``next``: the next state in the 6-feature encoding, decoded with ``atan2``.

**Windows** are built per simulation from index arrays: a chunk of whole simulations is read
(Polars scan, filtered on ``sim_id`` so only its row groups are read) into one ``(rows, F)``
array, and window ``j`` is ``rows[start_j : start_j + W]`` with targets
``rows[start_j + W : start_j + W + K]``, where the starts of a simulation with ``n`` rows run
over its first ``n - W - K + 1`` rows only. Nothing ``(N, W, F)``-sized is ever materialised;
batches are gathered from the chunk, so memory is bounded by the chunk size (``stream_rows``).

**Normalisation** (mean, std per feature and per target component) is fitted by one streaming
pass over the training simulations only; a zero std (a constant column) is replaced by 1.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import polars as pl
import torch

from trainables.common.errors import DataError

from .dataset import PARAM_COLUMNS, STATE_COLUMNS, PendulumDataset
from .physics import wrap

ENCODED = 6
"""Features per time step of the encoded state (sin/cos of both angles, both angular velocities)."""


def encode(states: np.ndarray) -> np.ndarray:
    """``(..., 4)`` rad, rad/s -> ``(..., 6)`` (sin th1, cos th1, sin th2, cos th2, w1, w2)."""
    th1, th2, w1, w2 = np.moveaxis(states, -1, 0)
    return np.stack([np.sin(th1), np.cos(th1), np.sin(th2), np.cos(th2), w1, w2], axis=-1)


def target_dim(target: str) -> int:
    return 4 if target == "delta" else ENCODED


def targets(states: np.ndarray, target: str) -> np.ndarray:
    """Per-row target ``(rows, D)``: row i is the target for predicting row i from row i - 1.

    Row 0 of a simulation has no predecessor; windows never use it as a target.
    """
    if target == "next":
        return encode(states)
    delta = np.zeros_like(states)
    delta[1:] = states[1:] - states[:-1]
    delta[1:, :2] = wrap(delta[1:, :2])
    return delta


@dataclass
class Chunk:
    """Whole simulations in memory: inputs ``(rows, F)``, targets ``(rows, D)``, states ``(rows, 4)``
    (physical), params ``(rows, 4)``, the simulation of each row ``(rows,)``, and the valid
    window starts ``(n,)`` (row indices)."""

    inputs: np.ndarray
    targets: np.ndarray
    states: np.ndarray
    params: np.ndarray
    row_sim: np.ndarray
    starts: np.ndarray


def window_starts(lengths: np.ndarray, window: int, horizon: int) -> np.ndarray:
    """Row indices where a window of ``window`` inputs + ``horizon`` targets fits inside one simulation.

    ``lengths`` ``(sims,)`` are the row counts of consecutive simulations in a chunk.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    per_sim = [np.arange(o, o + n - window - horizon + 1) for o, n in zip(offsets, lengths) if n >= window + horizon]
    return np.concatenate(per_sim) if per_sim else np.empty(0, dtype=np.int64)


def read_chunk(ds: PendulumDataset, sims: np.ndarray, window: int, horizon: int, target: str,
               use_params: bool) -> Chunk:
    """Read simulations ``sims`` (sorted) and index their windows."""
    cols = ["sim_id", "t", *STATE_COLUMNS, *PARAM_COLUMNS]
    df = ds.collect(ds.scan().filter(pl.col("sim_id").is_in(sims.tolist())).select(cols).sort(["sim_id", "t"]))
    if df.height == 0:
        raise DataError(f"{ds.path}: no rows for simulations {sims[:5].tolist()}...")
    sim_col = df["sim_id"].to_numpy()
    states = df.select(STATE_COLUMNS).to_numpy()
    params = df.select(PARAM_COLUMNS).to_numpy()
    _, lengths = np.unique(sim_col, return_counts=True)
    tgt = np.concatenate([targets(s, target) for s in np.split(states, np.cumsum(lengths)[:-1])])
    feats = encode(states)
    if use_params:
        feats = np.concatenate([feats, params], axis=1)
    return Chunk(inputs=feats.astype(np.float32), targets=tgt.astype(np.float32), states=states, params=params,
                 row_sim=sim_col, starts=window_starts(lengths, window, horizon))


def gather(chunk: Chunk, starts: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(B, W, F)`` and targets ``(B, K, D)`` of the windows at ``starts``."""
    idx = starts[:, None] + np.arange(window)[None, :]
    out = starts[:, None] + window + np.arange(horizon)[None, :]
    return chunk.inputs[idx], chunk.targets[out]


def split_sims(sim_ids: np.ndarray, val_fraction: float, test_fraction: float, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test simulation ids (sorted), a seeded shuffle of ``sim_ids``.

    Each of validation and test gets ``max(1, round(fraction * n))`` simulations when its
    fraction is > 0; training keeps the rest and must keep at least one.
    """
    ids = np.random.default_rng(seed).permutation(np.asarray(sim_ids))
    n_val = max(1, round(val_fraction * len(ids))) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * len(ids))) if test_fraction > 0 else 0
    if n_val + n_test >= len(ids):
        raise DataError(f"{len(ids)} simulation(s) cannot be split into train, {n_val} validation and {n_test} test "
                        "simulations; generate more simulations or lower val_fraction / test_fraction")
    return np.sort(ids[n_val + n_test:]), np.sort(ids[:n_val]), np.sort(ids[n_val:n_val + n_test])


def group_sims(sims: np.ndarray, lengths: dict[int, int], max_rows: int) -> list[np.ndarray]:
    """Consecutive groups of ``sims`` with at most ``max_rows`` rows each (a longer sim alone)."""
    groups: list[list[int]] = [[]]
    rows = 0
    for s in sims:
        n = lengths[int(s)]
        if groups[-1] and rows + n > max_rows:
            groups.append([])
            rows = 0
        groups[-1].append(int(s))
        rows += n
    return [np.array(g) for g in groups if g]


@dataclass
class Normaliser:
    """Mean and std ``(F,)`` of inputs and ``(D,)`` of targets (zero std replaced by 1)."""

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray


class WindowStream:
    """Endless shuffled minibatches of training windows, one chunk of simulations in memory at a time.

    Each pass (epoch) visits the chunks in a new random order and the windows of a chunk in a
    random order; ``windows_per_epoch`` counts every valid window of the training simulations.
    """

    def __init__(self, ds: PendulumDataset, sims: np.ndarray, lengths: dict[int, int], window: int, horizon: int,
                 target: str, use_params: bool, max_rows: int, seed: int) -> None:
        self.ds, self.window, self.horizon, self.target, self.use_params = ds, window, horizon, target, use_params
        self.groups = group_sims(sims, lengths, max_rows)
        self.windows_per_epoch = sum(max(0, lengths[int(s)] - window - horizon + 1) for s in sims)
        if self.windows_per_epoch == 0:
            longest = max(lengths[int(s)] for s in sims)
            raise DataError(f"{ds.path}: window={window} + predict_steps={horizon} needs simulations of at least "
                            f"{window + horizon} samples; the longest training simulation has {longest}: use a "
                            f"window <= {longest - horizon}")
        self.rng = np.random.default_rng(seed)
        self.position: dict[str, Any] | None = None

    def chunks(self) -> Iterator[Chunk]:
        """Every training chunk once (in file order)."""
        for g in self.groups:
            yield read_chunk(self.ds, g, self.window, self.horizon, self.target, self.use_params)

    def fit_normaliser(self) -> Normaliser:
        """Mean and std of inputs and targets over the training windows' rows (one streaming pass)."""
        sx = sxx = sy = syy = None
        nx = ny = 0
        for c in self.chunks():
            x = c.inputs.astype(np.float64)
            used = np.unique((c.starts[:, None] + self.window + np.arange(self.horizon)).ravel())
            y = c.targets[used].astype(np.float64)
            sx = x.sum(0) if sx is None else sx + x.sum(0)
            sxx = (x ** 2).sum(0) if sxx is None else sxx + (x ** 2).sum(0)
            sy = y.sum(0) if sy is None else sy + y.sum(0)
            syy = (y ** 2).sum(0) if syy is None else syy + (y ** 2).sum(0)
            nx, ny = nx + len(x), ny + len(y)
        assert sx is not None and sxx is not None and sy is not None and syy is not None

        def std(s: np.ndarray, ss: np.ndarray, n: int) -> np.ndarray:
            var = np.maximum(ss / n - (s / n) ** 2, 0.0)
            out = np.sqrt(var)
            return np.where(out > 1e-8 * np.maximum(1.0, np.abs(s / n)), out, 1.0)

        return Normaliser(x_mean=sx / nx, x_std=std(sx, sxx, nx), y_mean=sy / ny, y_std=std(sy, syy, ny))

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless ``(inputs (B, W, F), targets (B, K, D))`` float32 batches, unnormalised.

        The position in the stream (the pass's chunk order, the chunk, the window order and the
        next window) is kept in ``self.position`` with the random generator's state, so that a
        checkpoint can store it (:meth:`state`) and a resumed run continue with exactly the
        batches an uninterrupted one would have drawn (:meth:`restore`)."""
        while True:
            if self.position is None:
                self.position = {"groups": self.rng.permutation(len(self.groups)).tolist(), "g": 0,
                                 "order": None, "i": 0}
            pos = self.position
            while pos["g"] < len(pos["groups"]):
                chunk = read_chunk(self.ds, self.groups[pos["groups"][pos["g"]]], self.window, self.horizon,
                                   self.target, self.use_params)
                if pos["order"] is None:
                    pos["order"], pos["i"] = self.rng.permutation(chunk.starts).tolist(), 0
                while pos["i"] < len(pos["order"]):
                    take = np.asarray(pos["order"][pos["i"]:pos["i"] + batch_size], dtype=np.int64)
                    pos["i"] += batch_size
                    x, y = gather(chunk, take, self.window, self.horizon)
                    yield torch.from_numpy(x), torch.from_numpy(y)
                pos["g"], pos["order"] = pos["g"] + 1, None
            self.position = None

    def state(self) -> dict[str, Any]:
        """The stream's position and random state, as plain values (for a checkpoint)."""
        return {"rng": self.rng.bit_generator.state, "position": copy.deepcopy(self.position)}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`; call before :meth:`batches`."""
        self.rng.bit_generator.state = state["rng"]
        self.position = copy.deepcopy(state["position"])


def sample_windows(chunk: Chunk, count: int, window: int, horizon: int, seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Up to ``count`` windows of ``chunk`` chosen with ``seed``: inputs, targets and their starts."""
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(chunk.starts, min(count, len(chunk.starts)), replace=False))
    x, y = gather(chunk, starts, window, horizon)
    return torch.from_numpy(x), torch.from_numpy(y), starts

