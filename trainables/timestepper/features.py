"""Features a time-step network sees (torch, float64).

- ``analytic``: per pair i < j of the current state ``[log r, log |v_rel|, log |a_rel|, log t_ff]``
  with a_rel = (m_i + m_j) / r^2 and the free-fall time t_ff = sqrt(r^3 / (m_i + m_j)); masses
  enter as ``m_i + m_j + 1e-12`` and speeds as ``|v| + 1e-12``, so a zero mass or a body at rest
  gives a finite (very large or small) feature, never NaN. ``4 * pairs`` values.
- ``history``: the analytic features of the last ``history_len`` states, oldest first, with
  zeros for states before the start (zero-padded): ``4 * pairs * history_len`` values.
"""

from __future__ import annotations

import torch

FEATURES = ("analytic", "history")
EPS = 1e-12


def pair_count(n: int) -> int:
    return n * (n - 1) // 2


def analytic(q: torch.Tensor, v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``(4 * pairs,)`` features of one state ``q, v`` ``(N, 2)``, masses ``(N,)``."""
    i, j = torch.triu_indices(len(q), len(q), 1)
    r = torch.linalg.vector_norm(q[j] - q[i], dim=-1)
    speed = torch.linalg.vector_norm(v[j] - v[i], dim=-1)
    mass = m[i] + m[j] + EPS
    feats = torch.stack([r.log(), (speed + EPS).log(), (mass / r ** 2).log(), 0.5 * (r ** 3 / mass).log()], -1)
    return feats.reshape(-1)


def feature_dim(kind: str, bodies: int, history_len: int) -> int:
    return 4 * pair_count(bodies) * (history_len if kind == "history" else 1)


class History:
    """The features of the last ``length`` accepted states (zeros before the start)."""

    def __init__(self, length: int, width: int) -> None:
        self.rows = torch.zeros(length, width, dtype=torch.float64)

    def push(self, row: torch.Tensor) -> None:
        self.rows = torch.cat([self.rows[1:], row.detach()[None]])

    def with_current(self, row: torch.Tensor) -> torch.Tensor:
        """The feature vector if ``row`` were the newest state (the stored history shifted by one)."""
        return torch.cat([self.rows[1:], row[None]]).reshape(-1)
