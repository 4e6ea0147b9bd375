"""Analysis over a large sweep: ``analyze`` and ``diff`` on N runs in one MLflow experiment.

Run: ``python benchmarks/analysis_bench.py [--runs 2000] [--store /tmp/dynsweep-bench-2000.db]``.

Builds (once; reused when the store file exists) a SQLite MLflow store holding one sweep:
a parent run and N child runs with 12 parameters, 3 test sets x 14 metrics and the tags the
tracker writes. Then times, in this process, each command's work (MLflow search page by page
into Polars, the table) against MLflow's own ``mlflow.search_runs`` into pandas over the same
runs (what users call by hand today) as the baseline ratio.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

SETS = ("complex_TBP_planar_1", "complex_TBP_planar_10", "complex_TBP_planar_100")
METRICS = ("accel_err_mean", "accel_err_median", "accel_err_std", "accel_err_skew", "accel_err_pearson_sk1",
           "accel_err_pearson_sk2", "accel_err_bowley", "theta_deg", "radial_pct", "loglog_slope_in",
           "loglog_slope_out", "rollout_pos_err_pct", "rollout_energy_drift", "rollout_failed")


def build(path: Path, n: int) -> None:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from search.store_template import prepare_store

    uri = f"sqlite:///{path}"
    prepare_store(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("big", artifact_location=(path.parent / "big-artifacts").as_uri())
    parent = client.create_run(exp, run_name="big", tags={"dynsweep.kind": "sweep", "git_commit": "abc123"})
    client.log_batch(parent.info.run_id, params=[Param("search.metric", "train_loss"), Param("search.mode", "min")])
    rng = random.Random(0)
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    for i in range(n):
        run = client.create_run(exp, run_name=f"trial_{i}", tags={"mlflow.parentRunId": parent.info.run_id,
                                                                  "trial_id": f"big_{i:05d}"})
        params = {"head": rng.choice(["mlp_4D_signed", "mlp_4D_unit", "mlp_4D_logmag_unit_exp"]),
                  "feature": rng.choice(["sph_4D_rinv_vel", "sph_4D_rinv_vel_harmonics"]),
                  "segment_length": str(rng.choice([4, 10, 18])), "depth": str(rng.choice([2, 4])),
                  "activation": rng.choice(["tanh", "leaky_relu"]), "width": "64", "batch_size": "256",
                  "lr": f"{10 ** rng.uniform(-4, -2):.6g}", "seed": str(i % 5), "steps": "2000",
                  "train_dataset": rng.choice(["complex_TBP_planar_10_train", "complex_TBP_planar_100_train"]),
                  "loss": "percent_error_plus_nmse"}
        metrics = [Metric(f"test/{s}/{m}", rng.uniform(0, 20), now, 2000) for s in SETS for m in METRICS]
        metrics += [Metric("train_loss", rng.uniform(0, 1), now, 2000), Metric("training_iteration", 20, now, 2000)]
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("trial_seconds", f"{rng.uniform(100, 300):.2f}"),
                               RunTag("train_dataset_sha256", "f" * 64)])
        client.set_terminated(run.info.run_id, "FINISHED")
        if (i + 1) % 250 == 0:
            print(f"  built {i + 1}/{n} runs ({time.perf_counter() - t0:.0f} s)", flush=True)
    client.set_terminated(parent.info.run_id, "FINISHED")


def timed(fn, repeats: int = 3) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()
    path = args.store or Path(f"/tmp/dynsweep-bench-{args.runs}.db")
    if not path.exists():
        print(f"building {path} with {args.runs} runs (once)")
        build(path, args.runs)
    import mlflow

    from analysis.source import open_sweep
    from analysis.tables import generalisation, sweep_variation

    uri = f"sqlite:///{path}"
    sweep = open_sweep("big", tracking_uri=uri)

    def analyze() -> None:
        table, _ = generalisation(open_sweep("big", tracking_uri=uri).runs())
        assert table.height == args.runs

    def diff_two() -> None:
        import contextlib
        import io

        from search.cli import main as cli

        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert cli(["diff", "big_00001", "big_01234", "--tracking-uri", uri, "--format", "csv"]) == 0
        assert "head" in out.getvalue() or "lr" in out.getvalue()

    def variation() -> None:
        sweep_variation(open_sweep("big", tracking_uri=uri).runs())

    def baseline() -> None:
        mlflow.set_tracking_uri(uri)
        df = mlflow.search_runs([sweep.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{sweep.parent_id}'",
                                max_results=100_000)
        assert len(df) == args.runs

    base = timed(baseline)
    print(f"{args.runs} runs, 12 params, {len(SETS) * len(METRICS) + 2} metrics each (best of 3, this machine):")
    print(f"  mlflow.search_runs -> pandas (baseline)  {base:6.2f} s")
    for name, fn in (("dynsweep analyze", analyze), ("dynsweep diff RUN RUN", diff_two),
                     ("dynsweep diff --sweep", variation)):
        t = timed(fn)
        print(f"  {name:<40} {t:6.2f} s   ratio to baseline {t / base:.2f}")


if __name__ == "__main__":
    main()
