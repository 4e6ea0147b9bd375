"""Learned time-stepper vs fixed dt vs the r^(3/2) rule on eccentric two-body orbits (docs/domain.md,
section 5), at equal maximum relative energy error.

Trains the family's default stepper (6 epochs of collection + generalisation) on e = 0.5 and
e = 0.9, integrates ``--orbits`` orbits with it, tunes both baselines (bisection in log-log) to
the same maximum energy error, and prints steps per orbit for each and the ratios
learned / baseline (below 1: the learned stepper needs fewer steps).

    python benchmarks/timestepper_orbits.py [--orbits 2] [--eccentricities 0.5 0.9] [--threshold 2e-4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orbits", type=float, default=2.0)
    ap.add_argument("--eccentricities", type=float, nargs="+", default=[0.5, 0.9])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=2e-4, help="energy_threshold (per-step gate)")
    args = ap.parse_args()
    from trainables.common.reporter import LocalReporter
    from trainables.timestepper.train import run

    print(f"{'e':>4} {'max dE/E':>9} {'learned':>8} {'fixed dt':>9} {'r^1.5':>8} {'vs fixed':>9} {'vs r^1.5':>9}"
          f" {'accept':>7} {'retrains':>8}   (steps per orbit)")
    for e in args.eccentricities:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            reporter = LocalReporter(tmp, progress=False)
            f = run({"e": e, "eval_orbits": args.orbits, "seed": args.seed, "energy_threshold": args.threshold},
                    reporter)
        retrains = sum(r["retrain_iterations"] for r in reporter.history)
        print(f"{e:4.2f} {f['test/energy_error']:9.2e} {f['test/steps_per_orbit']:8.0f} "
              f"{f['test/fixed_steps_per_orbit']:9.0f} {f['test/r32_steps_per_orbit']:8.0f} "
              f"{f['test/steps_ratio_fixed']:9.3f} {f['test/steps_ratio_r32']:9.3f} {f['acceptance_rate']:7.3f} "
              f"{retrains:8d}   ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
