"""Heads, features and the batched integration of the two-body neural ODE."""

from __future__ import annotations

import pytest
import torch

from trainables.common.errors import ConfigError, SegmentationError, SolverError
from trainables.twobody.config import TwoBodyConfig
from trainables.twobody.data import SegmentBatch, to_canonical
from trainables.twobody.dataset import TwoBodySpec, generate_arrays
from trainables.twobody.features import FEATURES, INVARIANT_FEATURES, feature_dim
from trainables.twobody.heads import EQUIVARIANT_HEADS, HEAD_DIMS, HEADS, HeadModule, planar
from trainables.twobody.model import VectorField, integrate
from trainables.twobody.segments import segment


def _states(n: int = 64, planar_orbits: bool = False) -> torch.Tensor:
    arr, _ = generate_arrays(TwoBodySpec(orbits=n, seed=4, planar=planar_orbits))
    return torch.as_tensor(to_canonical(arr).states[:, ::45].reshape(-1, 6))


def _true_acc(y: torch.Tensor) -> torch.Tensor:
    r = y[..., :3]
    return -r / torch.linalg.vector_norm(r, dim=-1, keepdim=True) ** 3


def _atanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log((1 + x) / (1 - x))


def _encode(head: str, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The MLP output for which ``head`` yields the acceleration ``a`` at ``y``."""
    mag = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    unit = a / mag
    if head == "mlp_simple":
        return torch.cat([y[..., 3:], a], -1)
    if head == "mlp_simple_hybrid":
        return a
    r_hat = y[..., :3] / torch.linalg.vector_norm(y[..., :3], dim=-1, keepdim=True)
    a_r = torch.sum(a * r_hat, -1, keepdim=True)
    if head == "rtn":
        return torch.cat([a_r, torch.zeros_like(mag), torch.zeros_like(mag)], -1)
    if head == "rt":
        return torch.cat([a_r, torch.zeros_like(mag)], -1)
    if head == "radial":
        return a_r
    if head == "radial_logmag":
        return torch.log(mag)
    inv_softplus = torch.log(torch.expm1(mag))
    encodings = {
        "mlp_4D_signed": (-mag, -unit),        # the sign ambiguity: (-m0) * (-d) = a
        "mlp_4D": (-mag, unit),
        "mlp_4D_accsoftplus": (inv_softplus, unit),
        "mlp_4D_softplus": (inv_softplus, unit),
        "mlp_4D_unit": (mag, 3.0 * unit),
        "mlp_4D_unit_softplus": (inv_softplus, 0.5 * unit),
        "mlp_4D_logmag_exp": (torch.log(mag), unit),
        "mlp_4D_logmag_unit_exp": (torch.log(mag), 7.0 * unit),
        "mlp_4D_logmag_unit_tanh_exp": (torch.log(mag), _atanh(0.5 * unit)),
        "mlp_4D_logmag_unit_tanh_softplus": (torch.log(torch.expm1(mag - 1e-8)), _atanh(0.5 * unit)),
        "mlp_4D_logmag_unit_softplus": (torch.log(torch.expm1(mag - 1e-8)), 2.0 * unit),
        "mlp_4D_signed_unit": (-mag, -4.0 * unit),
        "mlp_4D_unit_scaled": (mag * torch.sum(y[..., :3] ** 2, -1, keepdim=True), 0.3 * unit),  # = mu = 1
        "mlp_4D_activation": (mag, 5.0 * unit),  # the bare head: the activation is HeadModule's
    }
    m0, d = encodings[head]
    return torch.cat([m0, d], -1)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("constrained", [False, True])
def test_each_head_reproduces_the_true_field(head: str, constrained: bool) -> None:
    y = _states(planar_orbits=constrained)
    a = _true_acc(y)
    m = _encode(head, a, y)
    assert m.shape[-1] == HEAD_DIMS[head]
    out = HEADS[head](m, y)
    if constrained:
        out = planar(out)
        assert torch.all(out[..., 5] == 0)
    torch.testing.assert_close(out[..., :3], y[..., 3:], rtol=1e-12, atol=0)
    torch.testing.assert_close(out[..., 3:], a, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_gradients_are_finite_at_the_guards(head: str) -> None:
    y = torch.tensor([[1.2, 0.0, 0.0, 0.0, 0.9, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    m = torch.zeros(2, HEAD_DIMS[head], requires_grad=True)   # d = 0: the normalisation guard
    HEADS[head](m, y).sum().backward()
    assert torch.isfinite(m.grad).all()
    assert y.grad is None or torch.isfinite(y.grad).all()  # mlp_simple ignores y


def test_head_options_reproduce_the_true_field_from_their_encodings() -> None:
    y = _states()
    a = _true_acc(y)
    mag = torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    unit = a / mag
    # mlp_4D_activation with softplus: m0 = softplus^-1(|a|)
    head = HeadModule("mlp_4D_activation", "softplus", None, "none").double()
    torch.testing.assert_close(head(torch.cat([torch.log(torch.expm1(mag)), unit], -1), y)[..., 3:], a)
    # a sigmoid-bounded magnitude B sigmoid(m0), B = 2 (|a| <= 1 at r >= 1)
    for name in ("mlp_4D_signed", "mlp_4D_logmag_unit_exp"):
        head = HeadModule(name, "tanh", 2.0, "none").double()
        logit = torch.log(mag / 2.0) - torch.log1p(-mag / 2.0)
        torch.testing.assert_close(head(torch.cat([logit, 3.0 * unit], -1), y)[..., 3:], a)
        huge = head(torch.cat([torch.full_like(mag, 50.0), unit], -1), y)[..., 3:]
        assert torch.linalg.vector_norm(huge, dim=-1).max() <= 2.0
    r2 = torch.sum(y[..., :3] ** 2, -1, keepdim=True)
    head = HeadModule("mlp_4D_unit_scaled", "tanh", 2.0, "none").double()
    logit = torch.log(mag * r2 / 2.0) - torch.log1p(-mag * r2 / 2.0)
    torch.testing.assert_close(head(torch.cat([logit, unit], -1), y)[..., 3:], a)
    # one learned scale: exp(s) a, s = log 3 turns a third of the field into the field
    head = HeadModule("rtn", "tanh", None, "scalar").double()
    assert [n for n, _ in head.named_parameters()] == ["log_scale"]
    with torch.no_grad():
        head.log_scale.fill_(torch.log(torch.tensor(3.0)))
    r_hat = y[..., :3] / torch.linalg.vector_norm(y[..., :3], dim=-1, keepdim=True)
    a_r = torch.sum(a * r_hat, -1, keepdim=True) / 3.0
    torch.testing.assert_close(head(torch.cat([a_r, torch.zeros_like(a_r), torch.zeros_like(a_r)], -1), y)[..., 3:], a)


def test_new_activations_and_final_activation() -> None:
    from trainables.common.nn import ACTIVATIONS, mlp

    x = torch.tensor([-2.0, 0.0, 3.0])
    torch.testing.assert_close(ACTIVATIONS["shifted_softplus"]()(x),
                               torch.nn.functional.softplus(x) - torch.log(torch.tensor(2.0)))
    assert ACTIVATIONS["shifted_softplus"]()(torch.zeros(1)).item() == 0.0
    prelu = ACTIVATIONS["prelu"]()
    torch.testing.assert_close(prelu(x), torch.tensor([-0.5, 0.0, 3.0]))   # slope 0.25, learned
    net = mlp(3, 4, 8, 2, "gelu", "tanh")
    assert isinstance(net[-1], torch.nn.Tanh) and net(torch.randn(50, 3) * 100).abs().max() <= 1.0
    cfg = TwoBodyConfig(activation="prelu", final_activation="softplus", head="mlp_4D_activation",
                        magnitude_rescale="scalar", width=8)
    field = VectorField(cfg)
    assert {"head.log_scale", "head.magnitude_act.weight"} <= {n for n, _ in field.named_parameters()}
    with pytest.raises(ConfigError, match="config.final_activation: 'sigmoid'"):
        TwoBodyConfig(final_activation="sigmoid")
    with pytest.raises(ConfigError, match="config.magnitude_bound"):
        TwoBodyConfig(head="rtn", magnitude_bound=1.0)


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_features_values_and_finite_gradients(name: str) -> None:
    y = _states(8)
    f = FEATURES[name](y, 3)
    assert f.shape == (y.shape[0], feature_dim(name, 3))
    r = torch.linalg.vector_norm(y[:, :3], dim=-1)
    if name == "inv_logr_rinv_vrvt":
        torch.testing.assert_close(f[:, 0], torch.log(r))
        f = f[:, 1:]
    if name.startswith("inv_"):
        v_r = torch.sum(y[:, :3] * y[:, 3:], -1) / r
        torch.testing.assert_close(f[:, :3], torch.stack([1 / r, v_r, (torch.sum(y[:, 3:] ** 2, -1) - v_r**2).sqrt()], -1))
        torch.testing.assert_close(f[:, 3], torch.linalg.vector_norm(y[:, 3:], dim=-1))
    elif name != "cart":
        torch.testing.assert_close(f[:, 0], 1 / r)
        torch.testing.assert_close(f[:, 1:4], y[:, :3] / r[:, None])
    if name == "sph_4D_rinv_vel_vrvt":
        h = torch.linalg.vector_norm(torch.linalg.cross(y[:, :3], y[:, 3:]), dim=-1)
        v2 = torch.sum(y[:, 3:] ** 2, -1)
        torch.testing.assert_close(f[:, 7] ** 2 + f[:, 8] ** 2, v2)   # v_r^2 + v_t^2 = v^2
        torch.testing.assert_close(f[:, 9], h)
    zero = torch.zeros(1, 6, requires_grad=True)                        # r = v = h = 0
    FEATURES[name](zero, 3).sum().backward()
    assert torch.isfinite(zero.grad).all()


def _random_orthogonal(n: int, seed: int) -> torch.Tensor:
    """``n`` random 3x3 orthogonal matrices, half of them reflections (det -1), float64."""
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).to(q)[:, None, None]


@pytest.mark.parametrize("feature", sorted(INVARIANT_FEATURES))
@pytest.mark.parametrize("head", sorted(EQUIVARIANT_HEADS))
def test_invariant_models_turn_with_the_state(feature: str, head: str) -> None:
    """f(M y) = M f(y) for rotations and reflections M, to float64 precision, for a random
    untrained network: equivariance by construction, not learned."""
    torch.manual_seed(0)
    field = VectorField(TwoBodyConfig(feature=feature, head=head, width=32, depth=3, activation="tanh")).double()
    y = _states(16)
    m = _random_orthogonal(y.shape[0], seed=1)
    turned = torch.cat([torch.einsum("bij,bj->bi", m, y[:, :3]), torch.einsum("bij,bj->bi", m, y[:, 3:])], -1)
    with torch.no_grad():
        expected = torch.einsum("bij,bj->bi", m, field.acceleration(y))
        torch.testing.assert_close(field.acceleration(turned), expected, rtol=1e-12, atol=1e-14)
        # a plain model is not: the same check fails on sph_4D_rinv_vel + mlp_4D_signed
        plain = VectorField(TwoBodyConfig(width=32, depth=3)).double()
        gap = (plain.acceleration(turned) - torch.einsum("bij,bj->bi", m, plain.acceleration(y))).abs().max()
    assert gap > 1e-3


def test_augmentation_turns_whole_segments_and_is_reproducible() -> None:
    """Augmented segments are exact orbits (turned states of a true trajectory), each segment
    with its own draw, the same for the same generator state, and planar data stays planar."""
    from trainables.twobody.augment import augment

    arr, _ = generate_arrays(TwoBodySpec(orbits=4, seed=2))
    states = torch.as_tensor(to_canonical(arr).states[:, :20])           # (4, 20, 6) planar segments
    out = augment(states, "rotate_mirror", torch.Generator().manual_seed(5))
    again = augment(states, "rotate_mirror", torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    assert torch.all(out[..., 2] == 0) and torch.all(out[..., 5] == 0)
    for a, b in ((states[..., :3], out[..., :3]), (states[..., 3:], out[..., 3:])):   # norms kept
        torch.testing.assert_close(torch.linalg.vector_norm(b, dim=-1), torch.linalg.vector_norm(a, dim=-1))
    h = out[..., 0] * out[..., 4] - out[..., 1] * out[..., 3]                        # some segments mirrored
    assert set(torch.sign(h[:, 0]).tolist()) <= {1.0, -1.0} and (h[:, :1] * h).min() > 0
    assert torch.equal(augment(states, "none", torch.Generator()), states)


def test_harmonics_order_sets_width() -> None:
    assert feature_dim("sph_4D_rinv_vel_harmonics", 1) == 9
    assert feature_dim("sph_4D_rinv_vel_harmonics", 6) == 19


class _Exact(torch.nn.Module):
    """The true Kepler field, in the VectorField interface."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([y[..., 3:], _true_acc(y)], -1)


@pytest.mark.parametrize("solver", ["dopri5", "tsit5", "torchdiffeq_dopri5", "rk4"])
def test_one_solver_call_integrates_segments_of_different_periods(solver: str) -> None:
    arr, _ = generate_arrays(TwoBodySpec(orbits=12, seed=8))
    segs = SegmentBatch.of(segment(to_canonical(arr), 18), torch.float64, torch.device("cpu"))
    assert segs.dt.min() * 3 < segs.dt.max()   # really different time steps in one batch
    cfg = TwoBodyConfig(solver=solver, rtol=1e-10, atol=1e-12, rk4_substeps=8, max_solver_steps=10_000)
    pred, nfe = integrate(_Exact(), segs.states[:, 0], segs.dt, 18, cfg)  # type: ignore[arg-type]
    assert pred.shape == segs.states.shape and nfe > 0
    err = torch.linalg.vector_norm(pred - segs.states, dim=-1) / torch.linalg.vector_norm(segs.states, dim=-1)
    assert err.max() < (2e-3 if solver == "rk4" else 1e-7)


@pytest.mark.parametrize("solver", ["dopri5", "tsit5", "torchdiffeq_dopri5"])
def test_solver_step_bound_raises_solver_error(solver: str) -> None:
    arr, _ = generate_arrays(TwoBodySpec(orbits=3, seed=8))
    segs = SegmentBatch.of(segment(to_canonical(arr), 18), torch.float64, torch.device("cpu"))
    cfg = TwoBodyConfig(max_solver_steps=2, solver=solver)
    with pytest.raises(SolverError, match="max_num_steps exceeded") as info:
        integrate(_Exact(), segs.states[:, 0], segs.dt, 18, cfg, step=7)  # type: ignore[arg-type]
    assert info.value.step == 7 and info.value.failure_class == "solver"


def test_vector_field_shapes_and_planar_constraint() -> None:
    cfg = TwoBodyConfig(feature="sph_4D_rinv_vel_harmonics", harmonic_order=2, head="rtn", width=16, depth=3,
                        activation="gelu", planar_constraint=True)
    field = VectorField(cfg).double()
    y = _states(4)
    out = field(y)
    assert out.shape == y.shape and torch.all(out[:, 5] == 0)
    assert field.acceleration(y).shape == (y.shape[0], 3)


@pytest.mark.parametrize("changes,message", [
    ({"head": "mlp_5D"}, "allowed: mlp_4D,"),
    ({"activation": "swish"}, "allowed: elu, gelu, leaky_relu"),
    ({"loss": "l1"}, "allowed: mean_squared_error"),
    ({"solver": "euler"}, "allowed: dopri5, rk4, torchdiffeq_dopri5"),
    ({"width": 0}, "config.width: 0 must be > 0"),
])
def test_bad_names_and_values_list_what_is_allowed(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TwoBodyConfig.from_dict(changes)


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match="unknown key 'actvation' \\(did you mean 'activation'\\?\\)"):
        TwoBodyConfig.from_dict({"actvation": "tanh"})
    with pytest.raises(ConfigError, match="config.width: expected an integer, got '64'"):
        TwoBodyConfig.from_dict({"width": "64"})


def test_zero_segment_configs_are_refused_up_front() -> None:
    with pytest.raises(SegmentationError, match="segment_length=400"):
        TwoBodyConfig.from_dict({"segment_length": 400})
    with pytest.raises(SegmentationError, match=r"config.phases\[1\]: segment_length=40 .*\[0, 0.1\]"):
        TwoBodyConfig.from_dict({"phases": [{"steps": 10}, {"steps": 10, "segment_length": 40,
                                                           "orbit_fraction": [0.0, 0.1]}]})


def test_curriculum_fills_phases_from_top_level() -> None:
    cfg = TwoBodyConfig.from_dict({"lr": 1e-3, "segment_length": 10, "phases": [
        {"steps": 5, "orbit_fraction": [0, 0.1]}, {"epochs": 2}, {"steps": 7, "lr": 1e-4}]})
    phases = cfg.curriculum()
    assert [p.lr for p in phases] == [1e-3, 1e-3, 1e-4]
    assert [p.segment_length for p in phases] == [10, 10, 10]
    assert phases[0].orbit_fraction == (0.0, 0.1) and phases[2].orbit_fraction == (0.0, 1.0)
    assert phases[1].epochs == 2 and phases[1].steps is None
