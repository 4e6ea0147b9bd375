"""Two-body data benchmark: generate + write, read + segment, and a one-orbit read vs a full read.

Run: ``python benchmarks/data_bench.py [--orbits 100 1000] [--repeats 5]``. Prints, per size:
the time to generate and write the dataset, to read it back and segment it (L = 18), the peak
memory of each stage (in a fresh process, above what the imports take), and for the largest
size the time and bytes read by a one-orbit lazy read against a full read of the same file in
the same run (the ratio is what matters on a noisy machine).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rchar() -> int:
    """Bytes this process has read through read(2)/pread(2) so far (Linux /proc/self/io)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stage_generate(root: str, orbits: int) -> dict[str, float]:
    from trainables.twobody.dataset import TwoBodySpec, write_dataset

    base = _peak_rss_mb()
    t0 = time.perf_counter()
    write_dataset(TwoBodySpec(orbits=orbits, seed=0), root)
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_rss_mb() - base}


def _stage_read_segment(root: str, orbits: int) -> dict[str, float]:
    from trainables.twobody.dataset import TwoBodySpec, open_dataset
    from trainables.twobody.segments import split_segments

    base = _peak_rss_mb()
    t0 = time.perf_counter()
    ds = open_dataset(TwoBodySpec(orbits=orbits, seed=0).name, root=root)
    train, val = split_segments(ds.arrays(), segment_length=18, val_fraction=0.2)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": _peak_rss_mb() - base, "segments": len(train) + len(val)}


def _in_child(fn: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    """Run ``fn`` in a fresh process (imports done first) so its peak memory is its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, initializer=_warm_imports) as pool:
        return pool.apply(fn, args)


def _warm_imports() -> None:
    import numpy  # noqa: F401
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import trainables.twobody.dataset  # noqa: F401
    import trainables.twobody.segments  # noqa: F401


def _one_vs_all(root: str, orbits: int, repeats: int) -> None:
    import pyarrow.parquet as pq

    from trainables.twobody.dataset import SAMPLES_FILE, TwoBodySpec, open_dataset

    ds = open_dataset(TwoBodySpec(orbits=orbits, seed=0).name, root=root)
    size = os.path.getsize(ds.path / SAMPLES_FILE)
    groups = pq.ParquetFile(ds.path / SAMPLES_FILE).metadata.num_row_groups

    def measure(fn: Callable[[], Any]) -> tuple[float, int, int]:
        times, reads, rows = [], [], 0
        for _ in range(repeats):
            r0, t0 = _rchar(), time.perf_counter()
            rows = fn().height
            times.append(time.perf_counter() - t0)
            reads.append(_rchar() - r0)
        return statistics.median(times), int(statistics.median(reads)), rows

    t_all, b_all, n_all = measure(lambda: ds.scan().collect())
    t_one, b_one, n_one = measure(lambda: ds.orbit(orbits // 2))
    print(f"\none orbit of {orbits} (file {size / 1e6:.1f} MB, {groups} row groups), median of {repeats}:")
    print(f"  full read : {t_all * 1e3:8.1f} ms  {b_all / 1e6:8.2f} MB read  {n_all} rows")
    print(f"  one orbit : {t_one * 1e3:8.1f} ms  {b_one / 1e6:8.2f} MB read  {n_one} rows")
    ratio_b = b_all / b_one if b_one else float("inf")
    print(f"  ratio     : {t_all / t_one:8.1f}x faster, {ratio_b:.1f}x fewer bytes read")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orbits", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dynsweep-data-bench-") as root:
        print(f"{'orbits':>7} {'rows':>9} {'gen+write s':>12} {'peak MB':>8} {'read+seg s':>11} "
              f"{'peak MB':>8} {'segments':>9} {'MB on disk':>11}")
        for n in args.orbits:
            gen = _in_child(_stage_generate, root, n)
            rd = _in_child(_stage_read_segment, root, n)
            folder = Path(root) / f"complex_TBP_planar_{n}_train"
            disk = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
            print(f"{n:>7} {n * 360:>9} {gen['seconds']:>12.3f} {gen['peak_mb']:>8.1f} {rd['seconds']:>11.3f} "
                  f"{rd['peak_mb']:>8.1f} {int(rd['segments']):>9} {disk:>11.2f}")
        _one_vs_all(root, max(args.orbits), args.repeats)


if __name__ == "__main__":
    main()
