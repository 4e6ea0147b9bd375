"""TPE + ASHA against the exhaustive grid, on a real sub-grid of the reference two-body study.

Run: ``python benchmarks/asha_vs_grid.py [--steps 1000] [--seeds 0 1 2] [--samples 12] [--out DIR]``
(hours on 2 cores with the defaults: the 24-trial grid alone took about 2 h here, the three TPE +
ASHA sweeps 15-40 min each; ``--quick`` for a 3-minute smoke run; ``--storage DIR`` keeps the
sweeps, and running again with the same DIR continues a benchmark that was killed).

The space (10 training orbits, validated on ``complex_TBP_planar_10_val``, orbits never trained
on): feature {sph_4D_rinv_vel, sph_4D_rinv_vel_harmonics} x head {mlp_4D_signed,
mlp_4D_unit_softplus, mlp_4D_logmag_unit_exp, rtn} x segment length {4, 10, 18}; leaky_relu,
width 64, depth 2, ``--steps`` optimiser steps per full trial. Each sweep is a real ``dynsweep
launch`` (Ray, MLflow, the journal) on 2 CPUs, 2 trials at a time:

(a) the full grid (24 trials), FIFO: every trial trained to the end;
(b) Optuna TPE + ASHA (grace ``steps/10``, reduction factor 3, max_t ``steps``) over the same
    space, ``--samples`` trials, once per searcher seed.

For each it prints the best trial's config (by the validation loss, the metric ASHA ranks by),
its mean acceleration error on the 1/10/100-orbit test sets, trial-seconds and wall time, and the
ratios ASHA / grid (best 10-orbit error; trial-seconds). It also prints the Spearman rank
correlation, over the grid's trials, between the validation loss at each ASHA rung and the
final 10-orbit test error: whether the metric ASHA ranks by predicts generalisation.

Writes ``<out>/asha_vs_grid.csv`` (one row per trial of every sweep) and
``<out>/asha_vs_grid.png`` (best 10-orbit test error found so far against trial-seconds spent,
one curve per sweep). The last line reads ``asha/grid: error <x>x, trial-seconds <y>x`` (medians
over the seeds; the optimiser steps' ratio beside it does not depend on what else the machine
ran meanwhile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "feature": ["sph_4D_rinv_vel", "sph_4D_rinv_vel_harmonics"],
    "head": ["mlp_4D_signed", "mlp_4D_unit_softplus", "mlp_4D_logmag_unit_exp", "rtn"],
    "segment_length": [4, 10, 18],
}
TESTS = ("complex_TBP_planar_1", "complex_TBP_planar_10", "complex_TBP_planar_100")
ERR = "test/{}/accel_err_mean"


def _spec(name: str, storage: Path, steps: int, grid: bool, seed: int, samples: int,
          space: dict[str, list[Any]], metric: str) -> dict[str, Any]:
    kind = "grid" if grid else "choice"
    spec: dict[str, Any] = {
        "name": name, "family": "twobody",
        "base": {"train_dataset": "complex_TBP_planar_10_train", "val_dataset": "auto",
                 "test_datasets": [f"{t}_test" for t in TESTS], "activation": "leaky_relu",
                 "width": 64, "depth": 2, "steps": steps, "report_every": max(1, steps // 30),
                 "rollout": False},
        "space": {k: {kind: v} for k, v in space.items()},
        "resources": {"cpu": 1}, "max_concurrent": 2, "retries": 1, "storage": str(storage),
    }
    if grid:
        spec["search"] = {"algorithm": "grid", "metric": metric, "mode": "min"}
        spec["scheduler"] = {"type": "fifo"}
    else:
        spec["search"] = {"algorithm": "optuna", "seed": seed, "metric": metric, "mode": "min",
                          "num_samples": samples}
        spec["scheduler"] = {"type": "asha", "grace_period": max(1, steps // 10), "reduction_factor": 3,
                             "max_t": steps, "time_attr": "step"}
    return spec


def _launch(spec: dict[str, Any], folder: Path, storage: Path) -> float:
    """Run one sweep as a user would (``dynsweep launch``), or continue it (``dynsweep resume``) when
    ``storage`` already holds an unfinished one; a finished one is kept as it is. Returns its wall
    time (s), summed over every run of this benchmark that worked on it (``<storage>/walls.json``)."""
    import yaml

    sweep, walls_path = storage / spec["name"], storage / "walls.json"
    walls = json.loads(walls_path.read_text()) if walls_path.exists() else {}
    state = json.loads((sweep / "sweep.json").read_text()).get("state") if (sweep / "sweep.json").exists() else None
    if state == "finished":
        print(f"  {spec['name']}: already finished in {sweep}, kept", flush=True)
        return float(walls.get(spec["name"], float("nan")))
    if state is None:
        path = folder / f"{spec['name']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        cmd = ["launch", str(path)]
    else:
        print(f"  {spec['name']}: {state} in {sweep}, resuming it", flush=True)
        cmd = ["resume", str(sweep)]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "search.cli", *cmd, "--num-cpus", "2", "--progress-every", "60"],
                         cwd=ROOT, text=True, capture_output=True)
    wall = time.perf_counter() - t0 + float(walls.get(spec["name"], 0.0))
    if out.returncode != 0:
        raise SystemExit(f"{spec['name']} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    walls_path.write_text(json.dumps({**walls, spec["name"]: wall}))
    print(f"  {spec['name']}: {wall:.0f} s wall", flush=True)
    return wall


def _trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per trial from the sweep's journal: config, val_loss by step, final metrics,
    trial-seconds, finish order."""
    sys.path.insert(0, str(ROOT))
    from search.journal import Journal

    rows = []
    for trial_id, tj in Journal(sweep_dir).read().items():
        if not tj.results:
            continue
        val = {int(step): m.get("val_loss") for step, _, m, _ in tj.results if "val_loss" in m}
        acc = {int(step): m.get("val_accel_err") for step, _, m, _ in tj.results if "val_accel_err" in m}
        last = tj.results[-1][2]
        end_ms = max(t for _, t, _, _ in tj.results)
        rows.append({"trial": trial_id, **{k: tj.config.get(k) for k in SPACE},
                     "steps": max(val) if val else 0, "val_by_step": val, "acc_by_step": acc,
                     "val_loss": last.get("val_loss"), "val_accel_err": last.get("val_accel_err"),
                     "seconds": float(((tj.end or {}).get("tags") or {}).get("trial_seconds", 0.0)),
                     "end_ms": end_ms,
                     **{t: last.get(ERR.format(t)) for t in TESTS}})
    return sorted(rows, key=lambda r: r["end_ms"])


def _best(rows: list[dict[str, Any]], full: int, metric: str) -> dict[str, Any]:
    """The trial a user would pick: lowest ``metric`` among those trained to the end."""
    done = [r for r in rows if r["steps"] >= full and r[metric] is not None]
    return min(done, key=lambda r: r[metric])


def _best_so_far(rows: list[dict[str, Any]], full: int, metric: str) -> list[tuple[float, float]]:
    """(trial-seconds spent, 10-orbit test error of the best-by-``metric`` full trial so far)."""
    spent, best, curve = 0.0, None, []
    for r in rows:
        spent += r["seconds"]
        if r["steps"] >= full and r[metric] is not None and (best is None or r[metric] < best[metric]):
            best = r
        if best is not None:
            curve.append((spent, best[TESTS[1]]))
    return curve


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic) if len(x) > 2 else float("nan")


def _plot(curves: dict[str, list[tuple[float, float]]], rows: dict[str, list[dict[str, Any]]], path: Path,
          metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, curve in curves.items():
        if curve:
            xs, ys = zip(*curve)
            ax1.step(xs, ys, where="post", label=name, lw=2 if name == "grid" else 1.3)
        done = [r for r in rows[name] if r[TESTS[1]] is not None]
        ax2.scatter([r["seconds"] for r in done], [r[TESTS[1]] for r in done], s=18, label=name, alpha=0.7)
    ax1.set(xlabel="trial-seconds spent", ylabel="10-orbit test error of the best trial so far (%)",
            title=f"best-so-far (picked by {metric})", yscale="log")
    ax2.set(xlabel="trial-seconds of the trial", ylabel="10-orbit mean acceleration error (%)",
            title="every trial trained to the end", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000, help="optimiser steps of a full trial (default 1000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Optuna seeds (default 0 1 2)")
    ap.add_argument("--samples", type=int, default=12, help="trials per TPE + ASHA sweep (default 12)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="CSV and PNG go here")
    ap.add_argument("--quick", action="store_true", help="smoke run: 60 steps, 2 heads, 1 seed, 4 samples")
    ap.add_argument("--metric", choices=["val_accel_err", "val_loss"], default="val_accel_err",
                    help="what ASHA and Optuna rank by, and how the best trial is picked (default val_accel_err)")
    ap.add_argument("--storage", type=Path, default=None, metavar="DIR",
                    help="keep the sweeps under DIR (default: a temporary folder, removed at the end); run again "
                         "with the same DIR to continue a benchmark that was killed: finished sweeps are kept, "
                         "an unfinished one is resumed")
    ap.add_argument("--report-only", type=Path, default=None, metavar="STORAGE",
                    help="no new sweeps: report the grid and tpe_asha_seed* sweeps already under STORAGE")
    args = ap.parse_args()
    if args.report_only:
        names = ["grid"] + sorted(p.name for p in args.report_only.glob("tpe_asha_seed*")
                                  if (p / "summary.csv").exists())
        rows = {n: _trials(args.report_only / n) for n in names}
        saved = args.report_only / "walls.json"
        saved_walls = json.loads(saved.read_text()) if saved.exists() else {}
        walls = {n: float(saved_walls.get(n, float("nan"))) for n in names}
        args.out.mkdir(parents=True, exist_ok=True)
        _report(names, rows, walls, args.steps, args.out, args.metric)
        return
    space = SPACE
    if args.quick:
        args.steps, args.seeds, args.samples = 60, args.seeds[:1], 4
        space = {**SPACE, "head": SPACE["head"][:2]}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dynsweep-asha-vs-grid-") as tmp:
        storage = args.storage.resolve() if args.storage else Path(tmp) / "runs"
        names = ["grid"] + [f"tpe_asha_seed{s}" for s in args.seeds]
        walls, rows = {}, {}
        print(f"{len(names)} sweeps, {args.steps} steps per full trial, storage {storage}", flush=True)
        for name, seed in zip(names, [0, *args.seeds]):
            spec = _spec(name, storage, args.steps, name == "grid", seed, args.samples, space, args.metric)
            walls[name] = _launch(spec, Path(tmp), storage)
            rows[name] = _trials(storage / name)

    _report(names, rows, walls, args.steps, args.out, args.metric)


def _report(names: list[str], rows: dict[str, list[dict[str, Any]]], walls: dict[str, float], full: int,
            out: Path, metric: str) -> None:
    """Print the table, ratios and rank correlations; write the CSV and the PNG to ``out``."""
    grid_best = _best(rows["grid"], full, metric)
    print(f"\nsweep               trials  trial-s  steps   wall-s  best config (by {metric})"
          "                          test 1 / 10 / 100 orbits (%)")
    ratios_err, ratios_s, ratios_steps = [], [], []
    grid_s = sum(r["seconds"] for r in rows["grid"])
    grid_steps = sum(r["steps"] for r in rows["grid"])
    for name in names:
        best = _best(rows[name], full, metric)
        spent = sum(r["seconds"] for r in rows[name])
        steps = sum(r["steps"] for r in rows[name])
        cfg = f"{best['feature']} + {best['head']} + seg {best['segment_length']}"
        errs = " / ".join(f"{best[t]:.2f}" for t in TESTS)
        print(f"{name:<19} {len(rows[name]):>6}  {spent:>7.0f}  {steps:>6}  {walls[name]:>6.0f}  {cfg:<48} {errs}")
        if name != "grid":
            ratios_err.append(best[TESTS[1]] / grid_best[TESTS[1]])
            ratios_s.append(spent / grid_s)
            ratios_steps.append(steps / grid_steps)
    for name, e, s, n in zip(names[1:], ratios_err, ratios_s, ratios_steps):
        print(f"{name}: best 10-orbit error {e:.3f}x the grid's, trial-seconds {s:.3f}x the grid's "
              f"(optimiser steps {n:.3f}x: independent of the machine's load)")

    # does a validation metric at each ASHA rung predict the final 10-orbit test error?
    rungs = sorted({max(1, full // 10) * 3**k for k in range(8) if max(1, full // 10) * 3**k < full} | {full})
    grid_rows = [r for r in rows["grid"] if r[TESTS[1]] is not None]
    print("\nSpearman rank correlation over the grid's trials: validation metric at a step vs final "
          "10-orbit test error")
    for key, label in (("val_by_step", "val_loss"), ("acc_by_step", "val_accel_err")):
        cells = []
        for rung in rungs:
            pairs = [(r[key][s], r[TESTS[1]]) for r in grid_rows if r[key]
                     for s in [min(r[key], key=lambda k: abs(k - rung))] if abs(s - rung) <= full // 30]
            if pairs:
                cells.append(f"step {rung}: {_spearman(*map(list, zip(*pairs))):.3f}")
        print(f"  {label:<14} " + ", ".join(cells) + f" ({len(grid_rows)} trials)")

    import csv

    csv_path, png_path = out / "asha_vs_grid.csv", out / "asha_vs_grid.png"
    with open(csv_path, "w", newline="") as f:
        keys = ["sweep", "trial", *SPACE, "steps", "val_loss", "val_accel_err", "seconds", *TESTS,
                "val_by_step", "acc_by_step"]
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for name in names:
            for r in rows[name]:
                w.writerow({"sweep": name, **{k: r.get(k) for k in keys if k != "sweep"},
                            "val_by_step": json.dumps(r["val_by_step"]), "acc_by_step": json.dumps(r["acc_by_step"])})
    _plot({n: _best_so_far(rows[n], full, metric) for n in names}, rows, png_path, metric)
    print(f"\nwrote {csv_path} and {png_path}")
    if ratios_err:
        print(f"asha/grid: error {statistics.median(ratios_err):.3f}x, "
              f"trial-seconds {statistics.median(ratios_s):.3f}x, steps {statistics.median(ratios_steps):.3f}x")


if __name__ == "__main__":
    main()
