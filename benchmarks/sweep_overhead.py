"""Sweep-engine overhead, measured against bare Ray Tune in the same run.

Run: ``python benchmarks/sweep_overhead.py [--trials 40] [--skip-twobody]``.

(a) ``--trials`` trials that each sleep 1 s (10 reports of 0.1 s), 2 at a time on 2 CPUs. Wall
time from the command's start (a fresh process: imports, Ray start, MLflow store, everything)
against the ideal ``trials / 2`` seconds, as overhead %, for: bare Tune with a new worker per
trial, bare Tune with ``reuse_actors=True``, and ``dynsweep launch`` with MLflow tracking on and
failure isolation kept (``reuse_actors: true``; a crashed trial's worker is never reused), plus
``dynsweep launch`` with a new worker per trial.

(b) Two concurrent 1-CPU two-body trials against one alone: training throughput (steps/s
summed over the trials running together), ratio; 2.0 is perfect, thread oversubscription
shows as much less.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE_TUNE = textwrap.dedent("""
    import sys, time, ray
    from ray import tune
    reuse = sys.argv[2] == "reuse"
    ray.init(num_cpus=2, _temp_dir=sys.argv[3], include_dashboard=False, log_to_driver=False)
    def trainable(config):
        for i in range(10):
            time.sleep(0.1)
            tune.report({"loss": config["x"] / (i + 1)})
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                       param_space={"x": tune.grid_search(list(range(int(sys.argv[1]))))},
                       tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=reuse,
                                                   max_concurrent_trials=2),
                       run_config=tune.RunConfig(storage_path=sys.argv[4], name="bare", verbose=0))
    tuner.fit()
    ray.shutdown()
""")


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t0


def _dynsweep_spec(folder: Path, name: str, trials: int, reuse: bool) -> Path:
    import yaml

    spec = {"name": name, "family": "dummy", "storage": str(folder / "runs"),
            "base": {"steps": 10, "sleep_s": 0.1, "checkpoint_every": 10},
            "space": {"x": {"grid": [float(i) for i in range(trials)]}},
            "search": {"algorithm": "grid", "metric": "loss", "mode": "min", "num_samples": 1},
            "resources": {"cpu": 1}, "max_concurrent": 2, "reuse_actors": reuse}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def overhead(trials: int) -> None:
    ideal = trials / 2.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="dynsweep-ovh-", dir="/tmp") as tmp:
        folder = Path(tmp)
        script = folder / "bare.py"
        script.write_text(BARE_TUNE)
        for mode in ("new", "reuse"):
            wall = _timed([sys.executable, str(script), str(trials), mode, str(folder / f"ray-{mode}"),
                           str(folder / "bare-store")])
            rows.append((f"bare Ray Tune, {'reuse_actors' if mode == 'reuse' else 'new worker per trial'}", wall))
        exe = str(Path(sys.executable).parent / "dynsweep")
        for reuse in (True, False):
            spec = _dynsweep_spec(folder, f"ovh{int(reuse)}", trials, reuse)
            wall = _timed([exe, "launch", str(spec), "--quiet", "--num-cpus", "2"])
            rows.append((f"dynsweep + MLflow, {'reuse_actors' if reuse else 'new worker per trial'}", wall))
    print(f"(a) {trials} trials x 1 s, 2 at a time on 2 CPUs; ideal {ideal:.0f} s")
    print(f"    {'':<48} {'wall s':>7} {'overhead':>9}")
    for name, wall in rows:
        print(f"    {name:<48} {wall:>7.1f} {100 * (wall - ideal) / ideal:>8.0f}%")
    bare_reuse = rows[1][1]
    print(f"    dynsweep (reuse) / bare Tune (reuse) wall-time ratio: {rows[2][1] / bare_reuse:.2f}")


def throughput() -> None:
    import yaml

    results = {}
    with tempfile.TemporaryDirectory(prefix="dynsweep-thr-", dir="/tmp") as tmp:
        folder = Path(tmp)
        for n in (1, 2):
            spec = {"name": f"thr{n}", "family": "twobody", "storage": str(folder / "runs"),
                    "base": {"steps": 150, "report_every": 50, "test_datasets": [], "rollout": False},
                    "space": {"seed": {"grid": list(range(n))}},
                    "search": {"algorithm": "grid", "metric": "train_loss", "mode": "min", "num_samples": 1},
                    "resources": {"cpu": 1}, "max_concurrent": 2}
            path = folder / f"thr{n}.yaml"
            path.write_text(yaml.safe_dump(spec))
            _timed([str(Path(sys.executable).parent / "dynsweep"), "launch", str(path), "--quiet",
                    "--num-cpus", "2"], env={"DYNSWEEP_DATASETS": str(folder / "datasets")})
            from mlflow.tracking import MlflowClient

            client = MlflowClient(f"sqlite:///{folder / 'runs' / f'thr{n}' / 'mlflow.db'}")
            runs = client.search_runs([client.get_experiment_by_name(f"thr{n}").experiment_id])
            rates = []
            for run in runs:
                if "trial_id" in run.data.tags:
                    hist = sorted(client.get_metric_history(run.info.run_id, "steps_per_s"), key=lambda m: m.step)
                    rates.append(sum(m.value for m in hist[1:]) / max(1, len(hist) - 1))  # after warm-up
            results[n] = sum(rates)
    print(f"(b) two-body recipe, 1-CPU trials: 1 alone {results[1]:.2f} steps/s; 2 together "
          f"{results[2]:.2f} steps/s in total; throughput ratio {results[2] / results[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--skip-twobody", action="store_true")
    args = parser.parse_args()
    overhead(args.trials)
    if not args.skip_twobody:
        throughput()


if __name__ == "__main__":
    main()
