"""``dynsweep ui``: the MLflow UI on a sweep's tracking store, and the URL of its comparison view."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import AnalysisError
from .source import Sweep


def compare_url(base: str, sweep: Sweep, run_ids: list[str]) -> str:
    """The MLflow UI page comparing ``run_ids`` of the sweep's experiment."""
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([sweep.experiment_id])})
    return f"{base}/#/compare-runs?{query}"


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AnalysisError(f"the MLflow UI exited at once (status {proc.returncode}); is the port taken?")
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=1).status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise AnalysisError(f"the MLflow UI did not answer at {url} within {timeout:.0f} s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(sweep: Sweep, host: str, port: int, run_ids: list[str]) -> int:
    """Run ``mlflow ui`` on the sweep's store until Ctrl-C (or SIGTERM); returns its exit status."""
    if sweep.tracking_uri.startswith(("http://", "https://")):
        print(f"the sweep is on a tracking server already: {sweep.tracking_uri}/#/experiments/{sweep.experiment_id}")
        print(compare_url(sweep.tracking_uri.rstrip("/"), sweep, run_ids))
        return 0
    exe = Path(sys.executable).parent / "mlflow"
    cmd = [str(exe) if exe.exists() else "mlflow", "ui", "--backend-store-uri", sweep.tracking_uri,
           "--host", host, "--port", str(port)]
    proc = subprocess.Popen(cmd, start_new_session=True)
    base = f"http://{host}:{port}"
    try:
        wait_healthy(base, proc)
        print(f"MLflow UI: {base}/#/experiments/{sweep.experiment_id}")
        print(f"compare the sweep's runs: {compare_url(base, sweep, run_ids)}", flush=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
