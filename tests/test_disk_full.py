"""The disk fills up during a sweep: one line says where, and the sweep resumes once space is freed.

A real full disk: the sweep runs on a 48 MB tmpfs mounted in a private mount namespace
(``unshare``; skipped where the machine does not allow one), and ``dd`` fills it while trials
run. Real local Ray, real MLflow (SQLite in the sweep folder).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DYNSWEEP = str(Path(sys.executable).parent / "dynsweep")


def _namespace_allowed(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {probe}"],
                          capture_output=True, timeout=30)
    return done.returncode == 0


def test_disk_full_is_one_line_and_the_sweep_resumes_after_space_is_freed(tmp_path: Path) -> None:
    if not _namespace_allowed(tmp_path):
        pytest.skip("this machine does not allow a private mount namespace (unshare -rm)")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    spec = tmp_path / "full.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "full", "family": "dummy", "storage": "runs", "base": {"steps": 30, "sleep_s": 0.2},
        "space": {"x": {"grid": [0.5, 1.5]}}, "search": {"algorithm": "grid", "metric": "loss"},
        "resources": {"cpu": 1}, "retries": 0}))
    script = f"""
set -u
mount -t tmpfs -o size=48m tmpfs {disk} || exit 97
cd {disk}
{DYNSWEEP} launch {spec} --num-cpus 2 --quiet > {out}/launch.out 2> {out}/launch.err &
pid=$!
for i in $(seq 1 600); do
  grep -q '"e": "result"' runs/full/tracking_journal.jsonl 2>/dev/null && [ -d runs/full/tune/backup/last-good ] && break
  sleep 0.2
done
dd if=/dev/zero of=filler bs=1M > /dev/null 2>&1
wait $pid
echo $? > {out}/launch.rc
ls runs/full > {out}/folder.txt
rm -f filler
{DYNSWEEP} resume runs/full --resume-errored --num-cpus 2 --quiet > {out}/resume.out 2> {out}/resume.err
echo $? > {out}/resume.rc
"""
    subprocess.run(["unshare", "-rm", "sh", "-c", script], timeout=600, check=False)
    err = (out / "launch.err").read_text()
    assert (out / "launch.rc").read_text().strip() == "2", err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("dynsweep: error: no space left on device writing "), err[-3000:]
    assert "Traceback" not in err and "dynsweep resume" in lines[-1]
    assert "tune" in (out / "folder.txt").read_text().split()         # the sweep's state is kept
    resumed = (out / "resume.out").read_text()
    assert (out / "resume.rc").read_text().strip() == "0", (out / "resume.err").read_text()[-3000:]
    assert "2 trials: 2 finished" in resumed
