"""The Hamiltonian Neural Networks anchor (REFERENCE.md section 6): baseline MLP vs HNN on the paper's
ideal mass-spring and two-body recipes, our numbers beside the paper's (Greydanus et al. 2019, Table 1).

The same-run comparison is the ratio baseline / HNN of the rollout energy MSE (the paper: ~445x on
mass-spring, ~1630x on two-body); derivative-fit losses should be comparable. Recipes and models:
``trainables/worldmodels/hnn.py``.

    python benchmarks/hnn_anchor.py [--twobody-samples 100] [--twobody-steps 3000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spring-steps", type=int, default=2000)
    ap.add_argument("--twobody-samples", type=int, default=100, help="trajectories (the paper: 1000)")
    ap.add_argument("--twobody-steps", type=int, default=3000)
    args = ap.parse_args()
    from trainables.worldmodels.hnn import PAPER, anchor

    runs = {"spring": dict(steps=args.spring_steps),
            "twobody": dict(samples=args.twobody_samples, steps=args.twobody_steps)}
    print(f"{'system':8} {'model':8} {'deriv MSE':>10} {'paper':>9} {'energy MSE':>11} {'paper':>9}")
    for system, kwargs in runs.items():
        t0 = time.perf_counter()
        ours = anchor(system, **kwargs)
        paper = PAPER[system]
        for model in ("baseline", "hnn"):
            print(f"{system:8} {model:8} {ours[model + '_deriv']:10.3g} {paper[model + '_deriv']:9.3g} "
                  f"{ours[model + '_energy']:11.3g} {paper[model + '_energy']:9.3g}")
        print(f"{system:8} energy MSE baseline / HNN: ours {ours['baseline_energy'] / ours['hnn_energy']:.0f}x, paper "
              f"{paper['baseline_energy'] / paper['hnn_energy']:.0f}x; derivative MSE HNN / baseline: ours "
              f"{ours['hnn_deriv'] / ours['baseline_deriv']:.2f}, paper {paper['hnn_deriv'] / paper['baseline_deriv']:.2f}"
              f"  ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
