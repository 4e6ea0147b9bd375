"""Frames of the world-model environments, drawn with numpy (no display, no GPU).

Each environment is seen from a fixed camera (:data:`VIEWS`): its moving object is a disc on a
black background, ``size`` x ``size`` pixels, row 0 at the top, ``+y`` up.

=============  ==================================  ==============================================
env            object position (env units)         field of view (half-width, env units)
=============  ==================================  ==============================================
``pendulum``   bob at (l sin theta, -l cos theta)   the longest pendulum of the dataset's ``l`` range
               (pivot at the centre)
``oscillator`` (x, 0)                               :data:`OSCILLATOR_EXTENT`
``spaceship``  (qx, qy) (the attractor at the       :data:`SPACESHIP_EXTENT`
               centre)
=============  ==================================  ==============================================

The disc has radius ``size / 8`` pixels (at least 1.5) and an anti-aliased edge: a pixel's
intensity is the part of it the disc covers (``clip(r + 1/2 - d, 0, 1)`` for a pixel centre at
distance ``d``), so the pixels' centre of mass is the projected position to well under a pixel.
An object outside the field of view is clipped. Grey frames have one channel (intensity), RGB
frames three (the disc in :data:`COLOURS` of its env). Frames are ``uint8`` ``(..., C, S, S)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

COLOUR_MODES = {"grey": 1, "rgb": 3}
"""Colour modes -> channels."""
OSCILLATOR_EXTENT = 4.0
"""Half-width of the oscillator's view (env units): amplitudes of the default ranges stay inside."""
SPACESHIP_EXTENT = 2.5
"""Half-width of the spaceship's view (env units)."""
COLOURS = {"pendulum": (1.0, 0.35, 0.2), "oscillator": (0.2, 0.8, 1.0), "spaceship": (1.0, 0.9, 0.3)}
"""RGB colour of each env's disc (grey frames use intensity 1)."""


@dataclass(frozen=True)
class View:
    """How one env is seen: ``position(states, params) -> (..., 2)`` world coordinates of the
    object, and ``extent(param_max) -> half-width`` of the field of view (env units), where
    ``param_max`` maps parameter names to the largest value the dataset can draw."""

    position: Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]
    extent: Callable[[dict[str, float]], float]


def _pendulum(states: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    length = params["l"]
    return np.stack([length * np.sin(states[..., 0]), -length * np.cos(states[..., 0])], -1)


VIEWS: dict[str, View] = {
    "pendulum": View(_pendulum, lambda pmax: 1.05 * pmax["l"]),
    "oscillator": View(lambda s, p: np.stack([s[..., 0], np.zeros_like(s[..., 0])], -1),
                       lambda pmax: OSCILLATOR_EXTENT),
    "spaceship": View(lambda s, p: s[..., :2], lambda pmax: SPACESHIP_EXTENT),
}
"""Environments that can be rendered, by name."""


def radius(size: int) -> float:
    """The disc's radius in pixels for ``size`` x ``size`` frames."""
    return max(1.5, size / 8)


def project(env: str, states: np.ndarray, params: dict[str, np.ndarray], param_max: dict[str, float],
            size: int) -> np.ndarray:
    """Pixel coordinates ``(..., 2)`` = (column, row), continuous, of the object of ``states``
    ``(..., d)`` with per-item ``params`` (each broadcastable to ``states.shape[:-1]``); pixel
    ``(i, j)`` covers columns ``[i, i + 1)`` and rows ``[j, j + 1)``."""
    view = VIEWS[env]
    xy = view.position(states, params)
    scale = (size / 2 - radius(size) - 1) / view.extent(param_max)
    return np.stack([size / 2 + scale * xy[..., 0], size / 2 - scale * xy[..., 1]], -1)


def draw(centres: np.ndarray, size: int, colour: tuple[float, ...]) -> np.ndarray:
    """Frames ``(n, C, size, size)`` uint8 with a disc at each of ``centres`` ``(n, 2)`` (pixels);
    ``colour`` has one value per channel (0..1)."""
    grid = np.arange(size) + 0.5
    dx = grid[None, None, :] - centres[:, 0, None, None]
    dy = grid[None, :, None] - centres[:, 1, None, None]
    cover = np.clip(radius(size) + 0.5 - np.sqrt(dx ** 2 + dy ** 2), 0.0, 1.0)  # (n, S, S)
    frames = cover[:, None] * np.asarray(colour, dtype=float)[None, :, None, None]
    return np.round(frames * 255).astype(np.uint8)


def render(env: str, states: np.ndarray, params: dict[str, np.ndarray], param_max: dict[str, float], size: int,
           colour: str = "grey") -> np.ndarray:
    """Frames ``(n, T, C, size, size)`` uint8 of ``states`` ``(n, T, d)`` (``params``: ``{name: (n,)}``)."""
    n, t_len = states.shape[:2]
    per_step = {k: np.repeat(np.asarray(v, dtype=float)[:, None], t_len, 1) for k, v in params.items()}
    centres = project(env, states, per_step, param_max, size).reshape(n * t_len, 2)
    tint = COLOURS[env] if colour == "rgb" else (1.0,)
    return draw(centres, size, tint).reshape(n, t_len, len(tint), size, size)


def centre_of_mass(frames: np.ndarray) -> np.ndarray:
    """The intensity-weighted centre ``(..., 2)`` (column, row; pixel centres at ``i + 1/2``) of
    frames ``(..., C, S, S)`` (channels summed)."""
    mass = frames.astype(float).sum(-3)
    size = mass.shape[-1]
    grid = np.arange(size) + 0.5
    total = mass.sum((-1, -2))
    return np.stack([(mass * grid[None, :]).sum((-1, -2)) / total, (mass * grid[:, None]).sum((-1, -2)) / total], -1)
