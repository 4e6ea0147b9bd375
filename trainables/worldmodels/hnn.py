"""The Hamiltonian Neural Networks anchor (Greydanus et al. 2019; docs/domain.md, section 6).

The paper's recipes, regenerated here (greydanus/hamiltonian-nn, ``experiment-spring`` and
``experiment-2body``):

- **Ideal mass-spring**: H = q^2 + p^2 (k = m = 1 in the paper's units; dq/dt = 2p, dp/dt = -2q).
  50 trajectories, each from a random direction at radius U(0.1, 1), 30 samples over t in
  [0, 3] (scipy RK45, rtol 1e-10); Gaussian noise of std 0.1 added to q and p, the time
  derivatives kept exact; half the trajectories train, half test.
- **Two-body**: two unit masses (G = 1) on near-circular orbits about their centre of mass,
  radius U(0.5, 1.5), velocity perturbed by up to +/-20 %; 50 samples over t in [0, 20]; state
  ``(x1, y1, x2, y2, px1, py1, px2, py2)``; noise std 0.05; half train, half test. (The paper
  used 1000 trajectories; ``samples`` sets the count.)

Both models are MLPs of two hidden layers of 200 tanh units fitted to the time derivatives
(MSE), Adam at 1e-3 with weight decay 1e-4, full batch: the **baseline** maps the state to its
derivative; the **HNN** maps it to a scalar H and takes (dH/dp, -dH/dq) by autograd
(:func:`.models.energy_gradient`, the same code the ``port_hamiltonian`` world model uses).
Reported: the derivative MSE on the test points, and the **energy MSE** along rollouts of the
learned fields (torchdiffeq RK4) from the test trajectories' clean initial states over
``rollout_t`` time units (and a longer ``long_t``): mean over time and trajectories of
(H_true(y(t)) - H_true(y0))^2. Every number is a function of the seed alone: the data, the
initial weights and the batches are all drawn from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import nn
from torchdiffeq import odeint

from trainables.common.nn import mlp

from .models import energy_gradient

PAPER = {"spring": {"baseline_deriv": 3.67e-2, "hnn_deriv": 3.59e-2, "baseline_energy": 1.71e-1, "hnn_energy": 3.84e-4},
         "twobody": {"baseline_deriv": 2.96e-5, "hnn_deriv": 2.82e-6, "baseline_energy": 6.33e-2,
                     "hnn_energy": 3.88e-5}}
"""The paper's test losses and energy MSEs (Table 1)."""


@dataclass(frozen=True)
class System:
    """A Hamiltonian system: ``energy(y) (n, d) -> (n,)`` and ``field(y) (n, d) -> (n, d)`` (numpy)."""

    name: str
    dim: int
    energy: Callable[[np.ndarray], np.ndarray]
    field: Callable[[np.ndarray], np.ndarray]


def _spring_field(y: np.ndarray) -> np.ndarray:
    return np.stack([2 * y[..., 1], -2 * y[..., 0]], -1)


def _twobody_field(y: np.ndarray) -> np.ndarray:
    q1, q2, p1, p2 = y[..., 0:2], y[..., 2:4], y[..., 4:6], y[..., 6:8]
    d = q2 - q1
    f = d / np.linalg.norm(d, axis=-1, keepdims=True) ** 3   # force on body 1 (G = m = 1)
    return np.concatenate([p1, p2, f, -f], -1)


def _twobody_energy(y: np.ndarray) -> np.ndarray:
    return 0.5 * np.sum(y[..., 4:] ** 2, -1) - 1.0 / np.linalg.norm(y[..., 2:4] - y[..., 0:2], axis=-1)


SYSTEMS = {"spring": System("spring", 2, lambda y: y[..., 0] ** 2 + y[..., 1] ** 2, _spring_field),
           "twobody": System("twobody", 8, _twobody_energy, _twobody_field)}


def _initial(system: str, rng: np.random.Generator) -> np.ndarray:
    if system == "spring":
        y0 = rng.uniform(-1, 1, 2)
        return y0 / np.linalg.norm(y0) * rng.uniform(0.1, 1.0)
    p1 = rng.uniform(-1, 1, 2)
    r = rng.uniform(0.5, 1.5)
    p1 *= r / np.linalg.norm(p1)
    v1 = np.array([-p1[1], p1[0]]) / np.linalg.norm(p1) * np.sqrt(1.0 / (4 * r))   # circular: v^2 = G m / (4 r)
    v1 *= 1 + 0.2 * rng.uniform(-1, 1, 2)
    return np.concatenate([p1, -p1, v1, -v1])


@dataclass
class Recipe:
    """Training and test points ``(n, d)`` with exact derivatives, and the test trajectories' clean starts."""

    x_train: np.ndarray
    dx_train: np.ndarray
    x_test: np.ndarray
    dx_test: np.ndarray
    y0_test: np.ndarray


def make_recipe(system: str, samples: int = 50, seed: int = 0) -> Recipe:
    """The paper's data recipe for ``system`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sysm = SYSTEMS[system]
    t_end, points, noise = (3.0, 30, 0.1) if system == "spring" else (20.0, 50, 0.05)
    xs, dxs, y0s = [], [], []
    for _ in range(samples):
        y0 = _initial(system, rng)
        sol = solve_ivp(lambda _t, y: sysm.field(y), (0, t_end), y0, t_eval=np.linspace(0, t_end, points), rtol=1e-10)
        clean = sol.y.T
        xs.append(clean + rng.normal(0, noise, clean.shape))
        dxs.append(sysm.field(clean))
        y0s.append(y0)
    half = samples // 2
    stack = np.concatenate
    return Recipe(stack(xs[:half]), stack(dxs[:half]), stack(xs[half:]), stack(dxs[half:]), np.stack(y0s[half:]))


class Baseline(nn.Module):
    """dy/dt = MLP(y)."""

    def __init__(self, dim: int, width: int = 200) -> None:
        super().__init__()
        self.net = mlp(dim, dim, width, 2, "tanh")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class HNN(nn.Module):
    """dy/dt = (dH/dp, -dH/dq) with H = MLP(y); y = (q, p)."""

    def __init__(self, dim: int, width: int = 200) -> None:
        super().__init__()
        self.net = mlp(dim, 1, width, 2, "tanh")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        grad = energy_gradient(lambda x: self.net(x)[:, 0], y, self.training)
        half = y.shape[1] // 2
        return torch.cat([grad[:, half:], -grad[:, :half]], 1)


def fit(model: nn.Module, recipe: Recipe, steps: int, lr: float = 1e-3, batch: int | None = None,
        seed: int = 0) -> float:
    """Fit ``model`` to the training derivatives; returns the test derivative MSE."""
    torch.manual_seed(seed)
    x = torch.as_tensor(recipe.x_train, dtype=torch.float32)
    dx = torch.as_tensor(recipe.dx_train, dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=gen)[:batch] if batch else slice(None)
        loss = ((model(x[idx]) - dx[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    pred = model(torch.as_tensor(recipe.x_test, dtype=torch.float32)).detach()
    return float(((pred - torch.as_tensor(recipe.dx_test, dtype=torch.float32)) ** 2).mean())


def energy_mse(model: nn.Module, system: str, y0: np.ndarray, horizons: tuple[float, ...], dt: float) -> list[float]:
    """Mean (H(y(t)) - H(y0))^2 over t in [0, T] along one RK4 rollout of ``model`` from ``y0``
    ``(n, d)``, for each T in ``horizons``."""
    sysm = SYSTEMS[system]
    t = torch.arange(0, max(horizons) + 1e-9, dt, dtype=torch.float32)
    with torch.no_grad():
        traj = odeint(lambda _t, y: model(y), torch.as_tensor(y0, dtype=torch.float32), t, method="rk4").numpy()
    sq = (sysm.energy(traj.astype(np.float64)) - sysm.energy(y0)[None]) ** 2          # (time, n)
    return [float(sq[: int(round(h / dt)) + 1].mean()) for h in horizons]


def anchor(system: str, samples: int = 50, steps: int = 2000, rollout_t: float = 20.0, long_t: float = 100.0,
           dt: float = 0.05, batch: int | None = None, seed: int = 0) -> dict[str, float]:
    """Baseline and HNN on the paper's recipe, everything seeded by ``seed`` (data, initial weights,
    batches): test derivative MSE and rollout energy MSE of each over ``rollout_t`` (the paper's
    horizon) and ``long_t`` (``<model>_energy_long``: a learned field that does not conserve energy
    drifts, so its error grows with the horizon; the HNN's stays bounded)."""
    recipe = make_recipe(system, samples, seed)
    out: dict[str, float] = {}
    for name, cls in (("baseline", Baseline), ("hnn", HNN)):
        torch.manual_seed(seed)                    # the initial weights too, not only the batches
        model = cls(SYSTEMS[system].dim)
        out[f"{name}_deriv"] = fit(model, recipe, steps, batch=batch, seed=seed)
        out[f"{name}_energy"], out[f"{name}_energy_long"] = energy_mse(model, system, recipe.y0_test,
                                                                       (rollout_t, long_t), dt)
    return out
