"""Seed replicates in one trial against separate single-seed trials, on the same core.

Run: ``python benchmarks/replicates.py [--replicates 1 4 8] [--rounds 12] [--core 0] [--segments 200]``.

The two-body recipe (10 training orbits, segments of 18 samples: 200 segments in one batch,
sph_4D_rinv_vel -> MLP 64 x 2 leaky_relu -> mlp_4D_signed, dopri5 rtol 1e-6 / atol 1e-8,
float32, Adam). For each N, one process pinned to one core with one thread holds

- the N seeds as one model (:class:`~trainables.common.replicates.Replicated`, the family's
  replicated training step: one solver call over ``(N, 200, 6)``, N losses, one backward pass,
  one Adam step), and
- the same N seeds as N separate models, each with its own Adam (what N single-seed trials run),

and times their training steps interleaved (one replicated step, then one step of each single
model, ``--rounds`` times), so that whatever else the machine runs meanwhile slows both alike.
Throughput is replicate-steps per second on that core; reports, validation and process start-up
are left out of both (a separate trial would pay its own start-up and data loading on top). N = 1
is a plain trial on both sides (``replicates: 1`` stacks nothing): its ratio shows the method's
noise. The last line reads ``replicates 8: <X>x``: the speed-up of 8 replicates in one trial over 8
separate trials.
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

from benchmarks.twobody_step import SINGLE_THREAD_ENV  # noqa: E402 - one definition of "one thread"


def child(n: int, rounds: int, segments: int) -> None:
    """Time ``rounds`` interleaved steps of N replicates together and N models apart; print JSON."""
    import torch

    torch.set_num_threads(1)
    from trainables.common.replicates import Replicated
    from trainables.twobody.config import TwoBodyConfig
    from trainables.twobody.data import TrainingData
    from trainables.twobody.losses import get_loss
    from trainables.twobody.model import integrate
    from trainables.twobody.train_replicates import init_members

    cfg = TwoBodyConfig.from_dict({"device": "cpu"})
    members = [cfg.with_(seed=s) for s in range(n)]
    train, _ = TrainingData.load(cfg).phase_segments(cfg, 18, (0.0, 1.0), torch.float32, torch.device("cpu"))
    train = type(train)(train.states[:segments], train.dt[:segments])  # a batch of the first `segments`
    loss_fn = get_loss(cfg.loss)
    # replicates: 1 trains the plain model (no stacking): that row measures the noise of the method
    together = (Replicated(init_members(members, torch.device("cpu"), torch.float32)) if n > 1
                else init_members(members, torch.device("cpu"), torch.float32)[0])
    apart = init_members(members, torch.device("cpu"), torch.float32)
    opt_together = torch.optim.Adam(together.parameters(), lr=cfg.lr)
    opt_apart = [torch.optim.Adam(f.parameters(), lr=cfg.lr) for f in apart]
    states = train.states.expand(n, *train.states.shape).contiguous()
    dt = train.dt.expand(n, *train.dt.shape).contiguous()

    def step_together() -> int:
        if n == 1:
            pred, nfe = integrate(together, train.states[:, 0], train.dt, 18, cfg)
            opt_together.zero_grad()
            loss_fn(pred, train.states).backward()
            opt_together.step()
            return nfe
        pred, nfe = integrate(together, states[:, :, 0], dt, 18, cfg)
        opt_together.zero_grad()
        sum(loss_fn(pred[i], states[i]) for i in range(n)).backward()
        opt_together.step()
        return nfe

    def step_apart(i: int) -> int:
        pred, nfe = integrate(apart[i], train.states[:, 0], train.dt, 18, cfg)
        opt_apart[i].zero_grad()
        loss_fn(pred, train.states).backward()
        opt_apart[i].step()
        return nfe

    step_together(), [step_apart(i) for i in range(n)]  # warm-up
    t_together = t_apart = 0.0
    nfe_together = nfe_apart = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        nfe_together += step_together()
        t1 = time.perf_counter()
        nfe_apart += sum(step_apart(i) for i in range(n))
        t_together, t_apart = t_together + t1 - t0, t_apart + time.perf_counter() - t1
    print(json.dumps({"together": n * rounds / t_together, "apart": n * rounds / t_apart,
                      "nfe_together": nfe_together / rounds, "nfe_apart": nfe_apart / (rounds * n)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, nargs="+", default=[1, 4, 8], help="N values (default 1 4 8)")
    ap.add_argument("--rounds", type=int, default=12, help="interleaved rounds timed per N (default 12)")
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: no pinning)")
    ap.add_argument("--segments", type=int, default=200, help="segments per batch (default 200: the recipe's all)")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child, args.rounds, args.segments)
        return
    print(f"two-body recipe ({args.segments} segments x 18 samples, MLP 64 x 2, dopri5), {args.rounds} interleaved rounds "
          f"per N, core {args.core}, one thread")
    print(f"{'N':>3}  {'together: replicate-steps/s':>27}  {'apart (N trials)':>16}  {'speed-up':>8}  "
          f"nfe/step together, apart")
    speedups = {}
    for n in args.replicates:
        cmd = [sys.executable, __file__, "--child", str(n), "--rounds", str(args.rounds), "--segments",
               str(args.segments)]
        if args.core >= 0 and hasattr(os, "sched_setaffinity"):
            cmd = ["taskset", "-c", str(args.core), *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD_ENV}, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"N={n} failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        speedups[n] = r["together"] / r["apart"]
        print(f"{n:>3}  {r['together']:>27.1f}  {r['apart']:>16.1f}  {speedups[n]:>7.2f}x  "
              f"{r['nfe_together']:.0f}, {r['nfe_apart']:.0f}", flush=True)
    top = max(args.replicates)
    print(f"replicates {top}: {speedups[top]:.2f}x")


if __name__ == "__main__":
    main()
