"""Seed replicates in one trial: N independently initialised copies of a model trained as one
vectorised model, and the metrics they report.

:class:`Replicated` stacks the parameters of N models built alike (same class and config,
different seeds) along a new leading dimension and runs all N in one call on inputs
``(N, ..., features)``: each ``nn.Linear`` becomes one batched matmul (``baddbmm``), each
``nn.PReLU`` a broadcast, a 0-d parameter a ``(N, 1, 1)`` tensor; every other operation of the
model acts on the last dimension and broadcasts over the leading one unchanged. On CPU, replicate
``i`` computes exactly what model ``i`` computes alone, forward and backward (the same matmul
kernels per replicate, the Linear gradients in ``nn.Linear``'s layout; a PReLU's weight gradient
rounds differently), so an optimiser over the stacked parameters (Adam: element-wise) trains N
independent models.

:func:`aggregate` is the one rule for what a replicated trial reports: the mean over the live
replicates under each metric's own name (what ASHA and Optuna rank), ``<name>_std``,
``<name>_min``, ``<name>_max`` and each replicate's value as ``<name>_r<i>``.
"""

from __future__ import annotations

import copy
import math
import statistics
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .errors import ConfigError


class _BatchedLinear(torch.autograd.Function):
    """``x (N, M, in) @ w (N, out, in)^T + b (N, out)`` whose backward multiplies in the same
    layout as ``nn.Linear``'s (``grad_w = grad^T x``, ``grad_x = grad w``), so each replicate's
    gradients are bit for bit those of its model alone (autograd's own ``bmm`` backward computes
    ``(x^T grad)^T``, which rounds differently)."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        wt = w.transpose(1, 2)
        return torch.bmm(x, wt) if b is None else torch.baddbmm(b[:, None, :], x, wt)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, w, b = inputs
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w = ctx.saved_tensors
        gx = torch.bmm(grad, w) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


class _StackedLinear(nn.Module):
    """N ``nn.Linear`` layers: ``(N, ..., in) -> (N, ..., out)``; weight ``(N, out, in)``, bias ``(N, out)``."""

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
        self.bias = (nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
                     if layers[0].bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _BatchedLinear.apply(x.reshape(x.shape[0], -1, x.shape[-1]), self.weight, self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class _StackedPReLU(nn.Module):
    """N single-parameter ``nn.PReLU``: weight ``(N, 1)``."""

    def __init__(self, layers: Sequence[nn.PReLU]) -> None:
        super().__init__()
        if layers[0].weight.numel() != 1:
            raise ConfigError("replicates: a PReLU with one parameter per channel cannot be replicated")
        self.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.reshape(x.shape[0], *([1] * (x.dim() - 1)))
        return torch.where(x >= 0, x, w * x)


_STACKED = {nn.Linear: _StackedLinear, nn.PReLU: _StackedPReLU}


class Replicated(nn.Module):
    """N models of one architecture as one: ``forward(x (N, ..., d))`` runs model ``i`` on ``x[i]``.

    ``members`` are built alike (the same class and constructor arguments; their own seeds);
    their parameters are copied. :meth:`member_state` and :meth:`load_member` move one
    replicate's weights to and from a plain model's ``state_dict`` (evaluation, the best model).

    Raises:
        ConfigError: a parameter the stacking does not know (not in a Linear or a PReLU, and
            not 0-d), or buffers that differ between members.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.n = len(members)
        self.model = copy.deepcopy(members[0])
        self._shapes = {name: p.shape for name, p in members[0].named_parameters()}
        for name, module in list(members[0].named_modules()):
            kind = _STACKED.get(type(module))
            if kind is not None:
                self._swap(name, kind([m.get_submodule(name) for m in members]))
        for name, param in list(self.model.named_parameters()):
            if name in self._shapes and param.shape == self._shapes[name]:  # not stacked by a module above
                if param.dim() != 0:
                    raise ConfigError(f"replicates: parameter {name!r} of shape {tuple(param.shape)} cannot be "
                                      "replicated (only Linear, PReLU and scalar parameters can)")
                owner, _, attr = name.rpartition(".")
                stacked = torch.stack([m.get_parameter(name).detach() for m in members]).reshape(self.n, 1, 1)
                setattr(self.model.get_submodule(owner), attr, nn.Parameter(stacked))
        for name, buf in members[0].named_buffers():
            if any(not torch.equal(buf, m.get_buffer(name)) for m in members[1:]):
                raise ConfigError(f"replicates: buffer {name!r} differs between replicates")

    def _swap(self, name: str, module: nn.Module) -> None:
        owner, _, attr = name.rpartition(".")
        setattr(self.model.get_submodule(owner), attr, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Replicate ``i``'s weights as the ``state_dict`` of one plain member (copies)."""
        params = dict(self.model.named_parameters())
        out = {name: params[name][i].detach().reshape(shape).clone() for name, shape in self._shapes.items()}
        out.update({name: buf.detach().clone() for name, buf in self.model.named_buffers()})
        return out

    @torch.no_grad()
    def load_member(self, i: int, state: dict[str, torch.Tensor]) -> None:
        """Set replicate ``i``'s weights from a plain member's ``state_dict``."""
        params = dict(self.model.named_parameters())
        for name in self._shapes:
            params[name][i].copy_(state[name].reshape(params[name][i].shape))

    @torch.no_grad()
    def disable(self, i: int) -> None:
        """Fill replicate ``i``'s weights with NaN: it computes NaN from then on, which a replicated
        solver's error norm (:func:`~trainables.common.ode.worst_rms`) and the losses leave out."""
        for p in self.parameters():
            p[i] = float("nan")

    @torch.no_grad()
    def zero_grad_of(self, dead: Sequence[int]) -> None:
        """Zero the gradients of the replicates ``dead`` (a diverged replicate's are NaN)."""
        if dead:
            for p in self.parameters():
                if p.grad is not None:
                    p.grad[list(dead)] = 0.0

    @torch.no_grad()
    def clip_grad_norm(self, max_norm: float) -> None:
        """``torch.nn.utils.clip_grad_norm_`` applied to each replicate on its own."""
        params = [p for p in self.parameters() if p.grad is not None]
        for i in range(self.n):
            norms = [torch.linalg.vector_norm(p.grad[i]) for p in params]
            total = torch.linalg.vector_norm(torch.stack(norms))
            coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
            for p in params:
                p.grad[i].mul_(coef)


def replicate_seeds(seed: int, n: int) -> list[int]:
    """The seeds of ``n`` replicates of a trial with ``seed``: seed, seed + 1, ..."""
    return [seed + i for i in range(n)]


def check_replicates(n: int) -> None:
    """Refuse a replicate count below 1, naming the key."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"config.replicates: {n!r} must be an integer >= 1 (seeds trained together in one trial)")


def aggregate(per_replicate: Sequence[dict[str, float]], live: Sequence[bool],
              spread: Callable[[str], bool] = lambda key: True) -> dict[str, float]:
    """What a replicated trial reports from each replicate's metrics.

    Every key of the first live replicate becomes the mean over the live replicates; the keys
    ``spread`` selects (a family keeps them to its headline metrics, so a run does not carry
    hundreds) add ``<key>_std`` (population standard deviation), ``<key>_min``, ``<key>_max`` and
    ``<key>_r<i>`` for every replicate (NaN for a dropped one). ``replicates_live`` says how many
    are live. A NaN of a live replicate makes the statistics NaN (as a single trial with that
    seed would rank last, not be left out); an infinite value makes the mean infinite and the
    standard deviation NaN.
    """
    alive = [m for m, ok in zip(per_replicate, live) if ok]
    out: dict[str, float] = {"replicates_live": float(len(alive))}
    if not alive:
        return out
    for key in alive[0]:
        values = [float(m[key]) for m in alive if key in m]
        finite = all(math.isfinite(v) for v in values)
        nan = any(math.isnan(v) for v in values) or not values
        out[key] = math.nan if nan else statistics.fmean(values) if finite else sum(values)
        if not spread(key):
            continue
        out[f"{key}_std"] = statistics.pstdev(values) if finite and values else math.nan
        out[f"{key}_min"] = math.nan if nan else min(values)
        out[f"{key}_max"] = math.nan if nan else max(values)
        for i, (m, ok) in enumerate(zip(per_replicate, live)):
            out[f"{key}_r{i}"] = float(m.get(key, math.nan)) if ok else math.nan
    return out


def replicate_metric_names(names: set[str], n: int, spread: Callable[[str], bool] = lambda key: True) -> set[str]:
    """The names :func:`aggregate` reports for ``names`` over ``n`` replicates."""
    out = set(names) | {"replicates_live"}
    for key in filter(spread, names):
        out |= {f"{key}_std", f"{key}_min", f"{key}_max"} | {f"{key}_r{i}" for i in range(n)}
    return out
