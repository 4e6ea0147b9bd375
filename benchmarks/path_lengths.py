"""A sweep launched from working directories of every path length: does Ray start, and how long
does a one-trial sweep take? (Ray's Unix sockets once failed for sweep folders of 46-60
characters.) Prints one line per length and the totals.

    python benchmarks/path_lengths.py --from 20 --to 120 --step 1     # about 10 s per length
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """name: pl
family: dummy
base: {steps: 2}
space: {x: {choice: [0.5]}}
search: {algorithm: random, metric: loss, num_samples: 1}
storage: runs
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="lo", type=int, default=20)
    parser.add_argument("--to", dest="hi", type=int, default=120)
    parser.add_argument("--step", type=int, default=1)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "dynsweep")
    base = Path(tempfile.mkdtemp(prefix="pl", dir="/tmp"))
    failed, times = [], []
    try:
        for length in range(args.lo, args.hi + 1, args.step):
            pad = length - len(str(base)) - 1
            if pad < 1:
                print(f"{length:4d}  skipped (the temp folder's own path is longer)")
                continue
            cwd = base / ("c" * pad)
            cwd.mkdir()
            (cwd / "pl.yaml").write_text(SPEC)
            start = time.perf_counter()
            done = subprocess.run([exe, "launch", "pl.yaml", "--quiet", "--num-cpus", "1"], cwd=cwd,
                                  capture_output=True, text=True, timeout=600)
            seconds = time.perf_counter() - start
            ok = done.returncode == 0 and "1 trials: 1 finished" in done.stdout
            (failed if not ok else times).append(length if not ok else seconds)
            last = (done.stderr.strip().splitlines() or [""])[-1][:120]
            print(f"{length:4d}  {'ok  ' if ok else 'FAIL'}  {seconds:5.1f} s  sweep folder {len(str(cwd)) + 8} "
                  f"chars{'' if ok else '  ' + last}", flush=True)
            shutil.rmtree(cwd, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{len(times)} lengths launched, {len(failed)} failed {failed}; median "
          f"{sorted(times)[len(times) // 2] if times else float('nan'):.1f} s per one-trial sweep")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
