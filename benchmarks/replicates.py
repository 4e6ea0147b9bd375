"""Seed replicates in one trial against separate single-seed trials, on the same core.

Run: ``python benchmarks/replicates.py [--replicates 1 4 8] [--steps 40] [--core 0]``.

The two-body recipe (10 training orbits, segments of 18 samples: 200 segments in one batch,
sph_4D_rinv_vel -> MLP 64 x 2 leaky_relu -> mlp_4D_signed, dopri5 rtol 1e-6 / atol 1e-8,
float32). For each N it trains

- one trial with ``replicates: N`` (seeds 0..N-1 as one vectorised model), and
- N separate trials with ``replicates: 1`` (seeds 0..N-1), one after the other,

each in its own process pinned to the same core with one thread, through the family's own
``run`` (reports, validation, checkpoints as in a sweep). Throughput is replicate-steps per
second per core over the steps between the first and the last report (set-up, validation and
test evaluation excluded from both). The last line reads ``replicates 8: <X>x``: the speed-up of
8 replicates in one trial over 8 separate trials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.twobody_step import SINGLE_THREAD_ENV  # noqa: E402 - one definition of "one thread"

RECIPE = {"train_dataset": "complex_TBP_planar_10_train", "test_datasets": [], "width": 64, "depth": 2,
          "feature": "sph_4D_rinv_vel", "head": "mlp_4D_signed", "segment_length": 18, "batch_size": 256,
          "solver": "dopri5", "rtol": 1e-6, "atol": 1e-8, "rollout": False, "device": "cpu"}


def child(config: dict, run_dir: str) -> None:
    """Train one trial and print its steady-state rate (from the last report) as JSON."""
    import torch

    torch.set_num_threads(1)
    from trainables.common.reporter import LocalReporter
    from trainables.twobody.train import run

    last = run(config, LocalReporter(run_dir, progress=False))
    print(json.dumps({"steps_per_s": last["steps_per_s"], "live": last.get("replicates_live", 1.0),
                      "nfe_per_step": last["nfe_per_step"]}))


def _trial(config: dict, core: int, folder: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", json.dumps(config), "--run-dir", str(folder)]
    if core >= 0 and hasattr(os, "sched_setaffinity"):
        cmd = ["taskset", "-c", str(core), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD_ENV}, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"trial failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, nargs="+", default=[1, 4, 8], help="N values (default 1 4 8)")
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps per trial; timed: the second half")
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin every trial to (-1: no pinning)")
    ap.add_argument("--datasets-root", default=None, help="datasets folder (default: the project's)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(json.loads(args.child), args.run_dir)
        return
    base = {**RECIPE, "steps": args.steps, "report_every": max(1, args.steps // 2)}
    if args.datasets_root:
        base["datasets_root"] = args.datasets_root
    print(f"two-body recipe, {args.steps} steps per trial (timed: the last {args.steps - args.steps // 2}), "
          f"core {args.core}, one thread")
    print(f"{'N':>3}  {'one trial: replicate-steps/s':>29}  {'N separate trials':>18}  {'speed-up':>8}  nfe/step")
    speedups = {}
    with tempfile.TemporaryDirectory(prefix="dynsweep-replicates-") as tmp:
        for n in args.replicates:
            together = _trial({**base, "replicates": n}, args.core, Path(tmp) / f"together{n}")
            rate_together = together["steps_per_s"] * together["live"]
            times = [1.0 / _trial({**base, "seed": s}, args.core, Path(tmp) / f"single{n}_{s}")["steps_per_s"]
                     for s in range(n)]
            rate_separate = n / sum(times)  # replicate-steps per second, the N trials one after the other
            speedups[n] = rate_together / rate_separate
            print(f"{n:>3}  {rate_together:>29.1f}  {rate_separate:>18.1f}  {speedups[n]:>7.2f}x  "
                  f"{together['nfe_per_step']:.0f}", flush=True)
    top = max(args.replicates)
    print(f"replicates {top}: {speedups[top]:.2f}x")


if __name__ == "__main__":
    main()
