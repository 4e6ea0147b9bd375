"""Where the latent ODE family's trajectories come from (no new simulators).

- ``pendulum``: the double-pendulum family's simulation dataset (:mod:`trainables.pendulum.dataset`,
  generated on first use): channels ``theta1, theta2`` (rad; ``positions``) and
  ``theta1_dot, theta2_dot`` (rad/s; ``full``), on the dataset's time grid. Simulations are split
  by id: ``id % 10 == 8`` validation, ``== 9`` test, the rest training.
- ``linear``: a known linear system for checks: ``dz/dt = A z`` with ``A = [[-d, -w], [w, -d]]``
  (:data:`LINEAR_DAMPING` ``d``, :data:`LINEAR_FREQUENCY` ``w``), ``z0`` uniform in the unit
  square, observed through the fixed linear map ``x = W z`` (:data:`LINEAR_DECODER`, 3 channels,
  dimensionless); exact solutions by the matrix exponential. ``positions`` keeps the first two
  channels.
- ``twobody``: the orbits of a planar two-body dataset (:mod:`trainables.twobody.dataset`, a
  standard name, generated on first use): each orbit from the dataset's epoch (its t = 0) at
  ``t = 0, dt, ...``, states by the two-body family's Kepler propagation of the dataset's elements
  (:func:`trainables.twobody.kepler.propagate`; exact, and equal to the dataset's own samples at
  its sample times). The two-body family's canonical units: channels ``x, y`` (DU = Earth radius,
  6378.137 km; ``positions``) and ``vx, vy`` (VU = 7.905 km/s; ``full``), times in TU (806.8 s),
  so ``mu = 1``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from trainables.common.errors import ConfigError

SYSTEMS = ("pendulum", "linear", "twobody")
OBSERVED = ("positions", "full")
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
LINEAR_DAMPING = 0.05
LINEAR_FREQUENCY = 1.0
LINEAR_DECODER = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, -0.8]])
"""``W`` of the linear system: 3 observed channels from the 2-D latent state."""


@dataclass
class Trajectories:
    """Noise-free trajectories on one time grid: ``t`` ``(T,)`` s, ``x`` ``(n, T, D)``."""

    t: np.ndarray
    x: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]
    content_hash: str


def linear(n: int, samples: int, dt: float, seed: int | list[int]) -> Trajectories:
    """``n`` trajectories of the linear system at ``t = 0, dt, ...`` (``samples`` points)."""
    a = np.array([[-LINEAR_DAMPING, -LINEAR_FREQUENCY], [LINEAR_FREQUENCY, -LINEAR_DAMPING]])
    z0 = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 2))
    t = np.arange(samples) * dt
    z = np.stack([z0 @ expm(a * ti).T for ti in t], 1)                 # (n, T, 2)
    x = z @ LINEAR_DECODER.T
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes() + t.tobytes()).hexdigest()
    return Trajectories(t, x, CHANNELS["linear"], ("1", "1", "1"), digest)


def pendulum(dataset: object, split: str) -> Trajectories:
    """The ``split`` simulations of an opened pendulum dataset (``PendulumDataset``)."""
    import polars as pl

    digit = pl.col("sim_id") % 10
    keep = {"train": digit < 8, "val": digit == 8, "test": digit == 9}[split]
    frame = dataset.collect(dataset.scan().filter(keep)).sort(["sim_id", "t"])  # type: ignore[attr-defined]
    ids = frame["sim_id"].unique(maintain_order=True)
    if ids.len() == 0:
        raise ConfigError(f"config.sims: the pendulum dataset has no {split} simulation (they are the ids ending "
                          "in 8 for val, 9 for test); use sims >= 10")
    cols = CHANNELS["pendulum"]
    x = frame.select(cols).to_numpy()
    n = ids.len()
    x = x.reshape(n, -1, len(cols))
    t = frame["t"].to_numpy()[: x.shape[1]]
    return Trajectories(t, x, cols, ("rad", "rad", "rad/s", "rad/s"), str(dataset.content_hash))  # type: ignore[attr-defined]


def twobody(dataset: object, samples: int, dt: float) -> Trajectories:
    """Every orbit of an opened planar two-body dataset (``TwoBodyDataset``) at ``t = 0, dt, ...``
    (``samples`` points, TU) from its epoch, in canonical units (see the module docstring).

    Raises:
        ConfigError: the dataset's orbits are not planar.
    """
    from trainables.twobody.constants import DU, TU, VU
    from trainables.twobody.dataset import ELEMENT_COLUMNS
    from trainables.twobody.kepler import propagate

    if not dataset.params.get("planar", False):  # type: ignore[attr-defined]
        raise ConfigError(f"config.dataset: {dataset.name} holds 3-D orbits; the latent ODE family reads "  # type: ignore[attr-defined]
                          "planar ones (x, y, vx, vy): use a <kind>_TBP_planar_... dataset")
    elements = dataset.orbits().sort("orbit_id")  # type: ignore[attr-defined]
    t = np.arange(samples) * dt
    states, _ = propagate(*(elements[c].to_numpy() for c in ELEMENT_COLUMNS), np.tile(t * TU, (elements.height, 1)))
    x = states[..., [0, 1, 3, 4]] / np.array([DU, DU, VU, VU])
    return Trajectories(t, x, CHANNELS["twobody"], ("DU", "DU", "VU", "VU"), str(dataset.content_hash))  # type: ignore[attr-defined]


CHANNELS = {"pendulum": ("theta1", "theta2", "theta1_dot", "theta2_dot"), "linear": ("x1", "x2", "x3"),
            "twobody": ("x", "y", "vx", "vy")}
"""Each system's channels (``positions`` keeps the first two)."""


def channels(system: str, which: str) -> tuple[str, ...]:
    """The observed channels of ``system`` under ``observed: which``."""
    return CHANNELS[system] if which == "full" else CHANNELS[system][:2]


def observed(traj: Trajectories, which: str) -> Trajectories:
    """Keep the ``positions`` channels (the first half of a state; the linear system's first two) or all."""
    if which == "full":
        return traj
    keep = 2
    return Trajectories(traj.t, traj.x[..., :keep], traj.channels[:keep], traj.units[:keep], traj.content_hash)
