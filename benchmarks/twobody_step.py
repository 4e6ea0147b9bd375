"""Training-step speed of the two-body recipe on one thread, against the reference JAX + Diffrax stack.

Run: ``python benchmarks/twobody_step.py [--steps 300] [--core 0]``.

The recipe (docs/domain.md, section 1): 10 training orbits, segments of 18 samples (200 segments, all in
one batch), sph_4D_rinv_vel -> MLP 64 x 2 leaky_relu -> mlp_4D_signed, percent_error_plus_nmse,
Adam 1e-3, dopri5 with rtol 1e-6 / atol 1e-8, float32. Each stack trains from the same
initial weights on the same segments for ``--steps`` steps in its own process pinned to the
same core with one thread, and prints: time to the first step (process start excluded,
data loading, model set-up and any compilation included), steps/s over the remaining steps,
and forward function evaluations per step. When JAX, Equinox, Diffrax and Optax are
installed (``pip install -e .[bench]``), the reference JAX + Diffrax stack (vmap over segments of
``diffrax.diffeqsolve`` with a PID controller, ``eqx.filter_jit``) runs too and the ratio is
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}


def _segments(root: str):  # -> (states (N, 18, 6) canonical, dt (N,), initial weights)
    import numpy as np

    from trainables.twobody.data import to_canonical
    from trainables.twobody.dataset import load_named
    from trainables.twobody.segments import segment

    segs = segment(to_canonical(load_named("complex_TBP_planar_10_train", root).arrays()), 18)
    return segs.states.astype(np.float32), (segs.t[:, 1] - segs.t[:, 0]).astype(np.float32)


def _initial_weights(seed: int = 0) -> list[tuple[list, list]]:
    """PyTorch's default Linear init for 7 -> 64 -> 64 -> 4, as plain lists (shared by both stacks)."""
    import torch

    torch.manual_seed(seed)
    layers = [torch.nn.Linear(7, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 4)]
    return [(lay.weight.detach().tolist(), lay.bias.detach().tolist()) for lay in layers]


def run_torch(root: str, steps: int) -> dict[str, float]:
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    from trainables.twobody.config import TwoBodyConfig
    from trainables.twobody.losses import percent_error_plus_nmse
    from trainables.twobody.model import VectorField, integrate

    t_imports = time.perf_counter() - t_start
    states_np, dt_np = _segments(root)
    cfg = TwoBodyConfig()
    field = VectorField(cfg)
    with torch.no_grad():
        linears = [m for m in field.net if isinstance(m, torch.nn.Linear)]
        for lin, (w, b) in zip(linears, _initial_weights()):
            lin.weight.copy_(torch.tensor(w))
            lin.bias.copy_(torch.tensor(b))
    states, dt = torch.from_numpy(states_np), torch.from_numpy(dt_np)
    opt = torch.optim.Adam(field.parameters(), lr=1e-3)
    nfes, losses, first, t1 = [], [], 0.0, 0.0
    for i in range(steps):
        pred, nfe = integrate(field, states[:, 0], dt, 18, cfg)
        loss = percent_error_plus_nmse(pred, states)
        opt.zero_grad()
        loss.backward()
        opt.step()
        nfes.append(nfe)
        losses.append(loss.item())
        if i == 0:
            first = time.perf_counter() - t_start
            t1 = time.perf_counter()
    rate = (steps - 1) / (time.perf_counter() - t1)
    return {"first_step_s": first, "imports_s": t_imports, "steps_per_s": rate,
            "nfe_per_step": sum(nfes) / len(nfes), "final_loss": losses[-1]}


def run_jax(root: str, steps: int) -> dict[str, float]:
    t_start = time.perf_counter()
    import diffrax
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    t_imports = time.perf_counter() - t_start
    states_np, dt_np = _segments(root)
    weights = _initial_weights()

    class Field(eqx.Module):
        layers: list

        def __call__(self, y):
            r = jnp.sqrt(jnp.sum(y[:3] ** 2) + 1e-24)
            h = jnp.concatenate([jnp.array([1.0 / r]), y[:3] / r, y[3:]])
            for i, (w, b) in enumerate(self.layers):
                h = w @ h + b
                if i < len(self.layers) - 1:
                    h = jax.nn.leaky_relu(h, 0.01)
            return jnp.concatenate([y[3:], h[0] * h[1:4]])

    model = Field([(jnp.array(w, jnp.float32), jnp.array(b, jnp.float32)) for w, b in weights])
    grid = jnp.arange(18, dtype=jnp.float32)

    def solve(model, y0, dt):
        term = diffrax.ODETerm(lambda s, y, args: dt * model(y))
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, 17.0, None, y0, saveat=diffrax.SaveAt(ts=grid),
                                  stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8),
                                  max_steps=2000)
        return sol.ys, sol.stats["num_steps"]

    def loss_fn(model, states, dt):
        pred, n_steps = jax.vmap(solve, in_axes=(None, 0, 0))(model, states[:, 0], dt)
        p, t = pred[:, 1:], states[:, 1:]
        pe = jnp.mean(jnp.linalg.norm(t - p, axis=-1) / jnp.maximum(jnp.linalg.norm(t, axis=-1), 1e-8)) * 100
        nmse = jnp.mean((p - t) ** 2) / jnp.mean(t ** 2)
        return pe + 100 * jnp.sqrt(nmse + 1e-12), n_steps

    opt = optax.adam(1e-3)
    opt_state = opt.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, states, dt):
        (loss, n_steps), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, states, dt)
        updates, opt_state = opt.update(grads, opt_state)
        return eqx.apply_updates(model, updates), opt_state, loss, n_steps

    states, dt = jnp.asarray(states_np), jnp.asarray(dt_np)
    steps_taken, first, t1, loss = [], 0.0, 0.0, None
    for i in range(steps):
        model, opt_state, loss, n_steps = step(model, opt_state, states, dt)
        loss.block_until_ready()
        steps_taken.append(float(jnp.max(n_steps)))
        if i == 0:
            first = time.perf_counter() - t_start
            t1 = time.perf_counter()
    rate = (steps - 1) / (time.perf_counter() - t1)
    # Dopri5 is FSAL: 6 evaluations per step; the vmapped loop runs as long as the slowest segment.
    return {"first_step_s": first, "imports_s": t_imports, "steps_per_s": rate,
            "nfe_per_step": 6 * sum(steps_taken) / len(steps_taken), "final_loss": float(loss)}


def _child(stack: str, root: str, steps: int, core: int) -> dict[str, float] | None:
    cmd = [sys.executable, __file__, "--child", stack, "--root", root, "--steps", str(steps)]
    if core >= 0 and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(core)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD_ENV})
    if out.returncode != 0:
        print(f"{stack}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--core", type=int, default=0, help="CPU core to pin both stacks to (-1: no pinning)")
    parser.add_argument("--root", default=None, help="datasets folder (default: a temporary one)")
    parser.add_argument("--child", choices=["torch", "jax"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        fn = run_torch if args.child == "torch" else run_jax
        print(json.dumps(fn(args.root, args.steps)))
        return
    import importlib.util
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dynsweep-step-bench-") as tmp:
        root = args.root or tmp
        from trainables.twobody.dataset import load_named

        load_named("complex_TBP_planar_10_train", root)  # generate once, outside the timings
        results = {"dynsweep (torch + torchdiffeq)": _child("torch", root, args.steps, args.core)}
        has_jax = all(importlib.util.find_spec(m) for m in ("jax", "equinox", "diffrax", "optax"))
        if has_jax:
            results["reference stack (jax + diffrax)"] = _child("jax", root, args.steps, args.core)
    print(f"recipe: 200 segments x 18 samples, MLP 64x2, dopri5 rtol 1e-6 atol 1e-8, {args.steps} steps, "
          f"1 thread, core {args.core}")
    print(f"{'stack':<32} {'first step s':>12} {'(imports s)':>11} {'steps/s':>8} {'nfe/step':>9} "
          f"{'loss at end':>12}")
    for name, r in results.items():
        if r:
            print(f"{name:<32} {r['first_step_s']:>12.2f} {r['imports_s']:>11.2f} {r['steps_per_s']:>8.2f} "
                  f"{r['nfe_per_step']:>9.1f} {r['final_loss']:>12.4f}")
    ours, theirs = (list(results.values()) + [None])[:2]
    if ours and theirs:
        print(f"ratio (dynsweep / reference stack), steps/s: {ours['steps_per_s'] / theirs['steps_per_s']:.2f}x")
    elif not has_jax:
        print("reference JAX + Diffrax stack not installed (pip install -e .[bench]): no ratio")


if __name__ == "__main__":
    main()
