"""The Hamiltonian Neural Networks anchor: baseline MLP vs HNN on the paper's ideal mass-spring
and two-body recipes (Greydanus et al. 2019, Table 1), over several seeds, our numbers beside
the paper's.

The same-run comparison is the ratio baseline / HNN of the rollout energy MSE, printed as the
median and range over seeds (each seed draws its own data, initial weights and batches), over
the paper's 20 time units and over 100 (where a field that does not conserve energy has had time
to drift). The paper: ~445x on mass-spring, ~1630x on two-body; derivative-fit losses should be
comparable. Recipes and models: ``trainables/worldmodels/hnn.py``.

    python benchmarks/hnn_anchor.py [--seeds 5] [--twobody-samples 100] [--twobody-steps 3000] [--skip-twobody]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _summary(values: list[float]) -> str:
    return f"median {statistics.median(values):8.3g}  range {min(values):8.3g} .. {max(values):8.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument("--spring-steps", type=int, default=2000)
    ap.add_argument("--twobody-samples", type=int, default=100, help="trajectories (the paper: 1000)")
    ap.add_argument("--twobody-steps", type=int, default=3000)
    ap.add_argument("--skip-twobody", action="store_true")
    args = ap.parse_args()
    import torch

    from trainables.worldmodels.hnn import PAPER, anchor

    runs = {"spring": dict(steps=args.spring_steps)}
    if not args.skip_twobody:
        runs["twobody"] = dict(samples=args.twobody_samples, steps=args.twobody_steps)
    print(f"torch threads: {torch.get_num_threads()}; seeds 0..{args.seeds - 1}", flush=True)
    for system, kwargs in runs.items():
        t0 = time.perf_counter()
        results = []
        for seed in range(args.seeds):
            r = anchor(system, seed=seed, **kwargs)
            results.append(r)
            print(f"{system:8} seed {seed}: deriv MSE baseline {r['baseline_deriv']:.3g} hnn {r['hnn_deriv']:.3g}; "
                  f"energy MSE (20 / 100 units) baseline {r['baseline_energy']:.3g} / {r['baseline_energy_long']:.3g}, "
                  f"hnn {r['hnn_energy']:.3g} / {r['hnn_energy_long']:.3g}", flush=True)
        paper = PAPER[system]
        for key in ("baseline_deriv", "hnn_deriv", "baseline_energy", "hnn_energy"):
            print(f"{system:8} {key:18} {_summary([r[key] for r in results])}   paper {paper[key]:.3g}")
        ratio = [r["baseline_energy"] / r["hnn_energy"] for r in results]
        ratio_long = [r["baseline_energy_long"] / r["hnn_energy_long"] for r in results]
        growth = [r["hnn_energy_long"] / r["hnn_energy"] for r in results]
        print(f"{system:8} energy MSE baseline / HNN over 20 units : {_summary(ratio)}   paper "
              f"{paper['baseline_energy'] / paper['hnn_energy']:.0f}x")
        print(f"{system:8} energy MSE baseline / HNN over 100 units: {_summary(ratio_long)}")
        print(f"{system:8} HNN energy MSE 100 / 20 units (1 = no drift): {_summary(growth)}")
        print(f"{system:8} derivative MSE HNN / baseline: "
              f"{_summary([r['hnn_deriv'] / r['baseline_deriv'] for r in results])}   paper "
              f"{paper['hnn_deriv'] / paper['baseline_deriv']:.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
