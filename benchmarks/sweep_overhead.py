"""Sweep-engine overhead, measured against bare Ray Tune in the same run.

Run: ``python benchmarks/sweep_overhead.py [--trials 40] [--repeats 3] [--skip-twobody]``.

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
import statistics
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


def overhead(trials: int, repeats: int) -> None:
    """Part (a). The reuse_actors pair is run ``repeats`` times, alternating, and the medians are
    compared (this machine's run-to-run noise is a few seconds); the new-worker pair once."""
    ideal = trials / 2.0
    walls: dict[str, list[float]] = {}
    exe = str(Path(sys.executable).parent / "dynsweep")
    with tempfile.TemporaryDirectory(prefix="dynsweep-ovh-", dir="/tmp") as tmp:
        folder = Path(tmp)
        script = folder / "bare.py"
        script.write_text(BARE_TUNE)

        def bare(mode: str, i: int) -> float:
            return _timed([sys.executable, str(script), str(trials), mode, str(folder / f"ray-{mode}{i}"),
                           str(folder / f"bare-store{i}")])

        def dynsweep(reuse: bool, i: int) -> float:
            spec = _dynsweep_spec(folder, f"ovh{int(reuse)}_{i}", trials, reuse)
            return _timed([exe, "launch", str(spec), "--quiet", "--num-cpus", "2"])

        for i in range(repeats):
            walls.setdefault("bare Ray Tune, reuse_actors", []).append(bare("reuse", i))
            walls.setdefault("dynsweep + MLflow, reuse_actors", []).append(dynsweep(True, i))
        walls["bare Ray Tune, new worker per trial"] = [bare("new", 0)]
        walls["dynsweep + MLflow, new worker per trial"] = [dynsweep(False, 0)]
    print(f"(a) {trials} trials x 1 s, 2 at a time on 2 CPUs; ideal {ideal:.0f} s; median of the runs shown")
    print(f"    {'':<42} {'runs (wall s)':>20} {'median':>7} {'overhead':>9}")
    medians = {}
    for name, runs in walls.items():
        medians[name] = statistics.median(runs)
        shown = " ".join(f"{w:.1f}" for w in runs)
        print(f"    {name:<42} {shown:>20} {medians[name]:>7.1f} {100 * (medians[name] - ideal) / ideal:>8.0f}%")
    ratio = medians["dynsweep + MLflow, reuse_actors"] / medians["bare Ray Tune, reuse_actors"]
    print(f"    dynsweep (reuse) / bare Tune (reuse) median wall-time ratio: {ratio:.2f}")


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
    parser.add_argument("--repeats", type=int, default=3, help="runs of the reuse_actors pair (median)")
    parser.add_argument("--skip-twobody", action="store_true")
    args = parser.parse_args()
    overhead(args.trials, args.repeats)
    if not args.skip_twobody:
        throughput()


if __name__ == "__main__":
    main()
