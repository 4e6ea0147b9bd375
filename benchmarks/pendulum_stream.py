"""Peak memory and throughput of double-pendulum training streamed from a 10-million-row file.

Builds two files with the pendulum schema through the family's own writer: the baseline of
1,000,000 rows and the large one of 10,000,000 rows (both: a generated DOP853 dataset of 50
simulations x 20 s, its simulations repeated under new ids, so generation time does not
dominate the benchmark). Then runs the family's real ``run()`` on each in a fresh process
(fixed steps; normalisation pass over every training simulation included) and prints the
peak resident memory, the training throughput in windows/s, and the ratios large / baseline.
Bounded memory means a ratio near 1 while the data grows 10x. The last line gives what
materialising every window eagerly would need, for comparison.

    python benchmarks/pendulum_stream.py [--steps 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from trainables.common.reporter import LocalReporter
from trainables.pendulum.train import run
cfg = json.loads(sys.argv[1])
reporter = LocalReporter(sys.argv[2], progress=False)
t0 = time.perf_counter()
final = run(cfg, reporter)
rates = [r["windows_per_s"] for r in reporter.history]
print(json.dumps({"seconds": time.perf_counter() - t0, "windows_per_s": sorted(rates)[len(rates) // 2],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "val_loss": final["val_loss"]}))
"""


def build(base: Path, out: Path, copies: int) -> float:
    """Write ``copies`` copies of ``base`` (new sim ids) to ``out``; returns seconds."""
    from trainables.common.parquet_store import BufferedParquetWriter
    from trainables.pendulum.dataset import ROW_GROUP, SCHEMA

    t0 = time.perf_counter()
    frame = pl.read_parquet(base)
    sims = int(frame["sim_id"].max()) + 1
    with BufferedParquetWriter(out, SCHEMA, ROW_GROUP, {"format": "dynsweep.pendulum/1", "benchmark": True}) as w:
        for k in range(copies):
            cols = {c: frame[c].to_numpy() for c in SCHEMA.names}
            cols["sim_id"] = cols["sim_id"] + k * sims
            w.write(cols)
    return time.perf_counter() - t0


def train(path: Path, steps: int, work: Path) -> dict[str, float]:
    cfg = {"dataset": str(path), "steps": steps, "report_every": max(1, steps // 5), "window": 20,
           "batch_size": 256, "hidden": 64, "layers": 2, "stream_rows": 500_000, "eval_sims": 2,
           "horizons": [10, 100], "lyapunov_sims": 1, "lyapunov_t_end": 2.0, "val_windows": 2048}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), str(work / path.stem)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--keep", type=Path, default=None, help="build the files here and keep them")
    args = ap.parse_args()
    from trainables.pendulum.dataset import PendulumSpec, write_dataset

    work = args.keep or Path(tempfile.mkdtemp(prefix="dynsweep-bench-pendulum-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        spec = PendulumSpec(sims=50, t_end=20.0, dt=0.01, seed=0)   # 50 x 2001 = 100,050 rows
        base = work / f"{spec.name}.parquet"
        if not base.exists():
            t0 = time.perf_counter()
            write_dataset(spec, base)
            print(f"generated {base.name}: {spec.sims} simulations x {spec.samples} samples in "
                  f"{time.perf_counter() - t0:.1f} s")
        files = {}
        for label, copies in (("baseline", 10), ("large", 100)):
            path = work / f"{label}.parquet"
            if not path.exists():
                seconds = build(base, path, copies)
                print(f"built {path.name}: {copies * 100_050:,} rows, {path.stat().st_size / 1e6:.0f} MB in {seconds:.1f} s")
            files[label] = path
        results = {}
        for label, path in files.items():
            results[label] = r = train(path, args.steps, work)
            rows = pl.scan_parquet(path).select(pl.len()).collect().item()
            print(f"{label:>8}: {rows:>12,} rows  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                  f"{r['windows_per_s']:9.0f} windows/s  run {r['seconds']:.1f} s (incl. normalisation pass "
                  f"and evaluation)")
        b, big = results["baseline"], results["large"]
        print(f"ratio large / baseline (10x the rows): peak memory {big['peak_rss_mb'] / b['peak_rss_mb']:.2f}x, "
              f"throughput {big['windows_per_s'] / b['windows_per_s']:.2f}x")
        eager = 10_000_000 * 20 * 6 * 4 / 1e9
        print(f"for comparison, all windows of the large file materialised as float32 (N, 20, 6): {eager:.1f} GB")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
