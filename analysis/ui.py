"""``dynsweep ui``: the MLflow UI on a sweep's tracking store, opened on the sweep's runs.

``serve`` starts one lean ``mlflow server`` (one worker, no background job runner, its log in
``<sweep folder>/mlflow_ui.log``) on the sweep's SQLite store, checks that the server answering
on the port is that process serving this store (its parent run is there over REST), then prints:

- the runs view: ``#/experiments/<id>/runs?viewStateShareKey=dynsweep&workflowType=machine_learning``
  (``workflowType`` switches the side bar to "Model training"). The share key names the
  experiment tag ``mlflow.sharedViewState.dynsweep`` (written here, plain JSON) holding MLflow's
  shareable view state: the sweep's trials only (``searchFilter`` on the parent run id, so they
  are top-level rows rather than children collapsed under the parent), sorted by the sweep metric
  best first (``orderByKey``/``orderByAsc``), the sweep metric and the swept parameters as the
  visible columns, and a chart set that starts with a parallel-coordinates chart of the swept
  parameters against the sweep metric, then the sweep metric's chart, then the other metrics.
  MLflow ignores a shared view when the URL also holds a search key (``orderByKey`` ...), so the
  sort lives in the state, not in the URL; the UI writes it into the URL once the view is loaded.
- the same view with ``compareRunsMode=CHART``: the charts, parallel coordinates first;
- MLflow's compare page for the best ``--compare`` runs (its plots cannot be chosen by URL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .errors import AnalysisError
from .source import Sweep

SHARE_KEY = "dynsweep"
SHARE_TAG = "mlflow.sharedViewState."
KIND_TAG = "mlflow.experimentKind"
LOG_NAME = "mlflow_ui.log"
WORKFLOW = {"workflowType": "machine_learning"}   # the UI's "Model training" side bar, not the GenAI one
MODEL_SECTION, SYSTEM_SECTION = "Model metrics", "System metrics"
NOT_CHARTED = frozenset({"step", "epoch", "total_steps", "best_step", "stopped_early"})
"""Bookkeeping metrics: the same for every trial or a counter, no chart of their own."""
WORKFLOW_HINT = ("(if a run link opens MLflow's 'Evaluation runs' view, click 'Model training' in the GenAI / "
                 "Model training switch at the top of the side bar once: the browser remembers it)")


def column(kind: str, key: str) -> str:
    """A column of MLflow's runs table as its view state names it: ``metrics.`loss```."""
    return f"{kind}.`{key}`"


def view_state(sweep: Sweep, metric: str, mode: str, params: list[str], metrics: list[str],
               results: list[str] | None = None) -> dict[str, Any]:
    """MLflow's shareable view state for the sweep (see the module docstring).

    ``params`` are the swept parameters (without ``params.``), ``metrics`` every metric the
    trials report (the sweep metric is put first), ``results`` the family's declared result
    metrics (``dynsweep.table_columns``, matched: the columns ``dynsweep analyze`` shows), shown
    as columns after the parameters and charted right after the sweep metric; bookkeeping
    metrics (:data:`NOT_CHARTED`) get no chart. Keys are those MLflow 3's runs page reads from
    ``mlflow.sharedViewState.<key>``; the search keys replace the URL's, the others the UI state
    (row expansion, pinning and hidden runs are not shareable).
    """
    results = [m for m in results or [] if m != metric]
    others = [m for m in metrics if m != metric and m not in results and m not in NOT_CHARTED]
    columns = ([column("metrics", metric)] + [column("params", p) for p in params]
               + [column("metrics", m) for m in results] + [DATASET_COLUMN])
    section, system = f"{sweep.experiment_id}-model", f"{sweep.experiment_id}-system"
    parallel = {"uuid": "dynsweep-parallel", "type": "PARALLEL", "runsCountToCompare": 100,
                "metricSectionId": section, "deleted": False, "isGenerated": False,
                "displayName": f"{', '.join(params) or 'parameters'} against {metric}",
                "selectedParams": params, "selectedMetrics": [metric], "showAllRuns": True}
    # MLflow turns a generated BAR chart of a metric logged at a step >= 1 into a LINE chart (the
    # history); a final value (results, test/...) is one point, so its bar is kept (not generated).
    # A metric without a card gets one, so the bookkeeping ones are there, deleted.
    charts = [parallel] + [
        {"uuid": f"dynsweep-{i}", "type": "BAR", "runsCountToCompare": 100, "metricSectionId": section,
         "deleted": m in NOT_CHARTED, "isGenerated": not (m in results or m.startswith("test/")), "metricKey": m,
         "displayName": m}
        for i, m in enumerate([metric] + results + others + [m for m in metrics if m in NOT_CHARTED])]
    return {
        "searchFilter": f"tags.`mlflow.parentRunId` = '{sweep.parent_id}'",
        "orderByKey": column("metrics", metric),
        "orderByAsc": mode == "min",
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "selectedColumns": columns,
        "columnOrder": columns,
        "runListHidden": False,
        "viewMaximized": False,
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts,
        "compareRunSections": [
            {"uuid": section, "name": MODEL_SECTION, "display": True, "isReordered": True, "deleted": False,
             "isGenerated": True},
            {"uuid": system, "name": SYSTEM_SECTION, "display": False, "isReordered": False, "deleted": False,
             "isGenerated": True}],
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
    }


def share_view(sweep: Sweep, state: dict[str, Any], key: str = SHARE_KEY) -> None:
    """Write the view state to the experiment (and mark it a model-training experiment, so the
    UI opens on runs rather than the GenAI overview, also for sweeps recorded before that tag)."""
    sweep.client.set_experiment_tag(sweep.experiment_id, SHARE_TAG + key, json.dumps(state, separators=(",", ":")))
    experiment = sweep.client.get_experiment(sweep.experiment_id)
    if experiment.tags.get(KIND_TAG) != "custom_model_development":
        sweep.client.set_experiment_tag(sweep.experiment_id, KIND_TAG, "custom_model_development")


def runs_url(base: str, sweep: Sweep, charts: bool = False, key: str = SHARE_KEY) -> str:
    """The experiment's runs page in the shared view ``key`` (the charts when ``charts``)."""
    query = {"viewStateShareKey": key, **({"compareRunsMode": "CHART"} if charts else {}), **WORKFLOW}
    return f"{base}/#/experiments/{sweep.experiment_id}/runs?{urllib.parse.urlencode(query)}"


def run_url(base: str, sweep: Sweep, run_id: str) -> str:
    """One run's page (the sweep's parent run: its description names the best trial)."""
    return f"{base}/#/experiments/{sweep.experiment_id}/runs/{run_id}?{urllib.parse.urlencode(WORKFLOW)}"


def compare_url(base: str, sweep: Sweep, run_ids: list[str]) -> str:
    """The MLflow UI page comparing ``run_ids`` of the sweep's experiment."""
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps([sweep.experiment_id]),
                                    **WORKFLOW})
    return f"{base}/#/compare-runs?{query}"


def free_port(host: str) -> int:
    """A port the OS has free on ``host`` now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already (a bind as the server would do fails)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _taken(host: str, port: int) -> AnalysisError:
    return AnalysisError(f"port {port} on {host} is taken by another server; "
                         f"use --port 0 for a free port (or another --port)")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def wait_serving(base: str, sweep: Sweep, proc: subprocess.Popen[bytes], log: Path, host: str, port: int,
                 timeout: float = 120.0) -> None:
    """Until the server at ``base`` is ``proc`` serving this sweep's store: ``proc`` alive and the
    sweep's parent run there over REST. A server that is not ours is an error (port taken)."""
    deadline = time.time() + timeout
    url = f"{base}/api/2.0/mlflow/runs/get?run_id={sweep.parent_id}"
    while time.time() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log.is_file() else ""
            if "address already in use" in text.lower():
                raise _taken(host, port)
            tail = "\n".join(text.splitlines()[-20:])
            raise AnalysisError(f"the MLflow server exited at once (status {proc.returncode}); "
                                f"the end of {log}:\n{tail}")
        try:
            run = _get_json(url)["run"]
        except urllib.error.HTTPError:            # a server without this run: ours dies on the bind
            time.sleep(0.3)
            continue
        except (OSError, ValueError, KeyError):
            time.sleep(0.3)
            continue
        if run["info"]["run_id"] == sweep.parent_id and proc.poll() is None:
            return
        raise _taken(host, port)
    raise AnalysisError(f"the MLflow server did not answer at {base} within {timeout:.0f} s; see {log}")


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """End the process group ``proc`` leads (SIGTERM, then SIGKILL after 20 s) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


DATASET_COLUMN = "attributes.`Dataset`"
"""MLflow's runs-table column of each run's dataset inputs (name and digest)."""


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def server_command(sweep: Sweep, host: str, port: int) -> list[str]:
    """``mlflow server`` on the sweep's store: one worker, only the tracking API and the UI."""
    exe = Path(sys.executable).parent / "mlflow"
    return [str(exe) if exe.exists() else "mlflow", "server", "--backend-store-uri", sweep.tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]


def sweep_folder(sweep: Sweep) -> Path:
    """Where the server's log goes: the folder of the sweep's SQLite file."""
    if sweep.tracking_uri.startswith("sqlite:///"):
        return Path(sweep.tracking_uri[len("sqlite:///"):]).parent
    return Path.cwd()


def serve(sweep: Sweep, host: str, port: int, run_ids: list[str], metric: str = "loss", mode: str = "min",
          params: list[str] | None = None, metrics: list[str] | None = None, results: list[str] | None = None) -> int:
    """Run ``mlflow server`` on the sweep's store until Ctrl-C (or SIGTERM); returns its exit status.

    ``params``: the swept parameters, ``metrics``: the metrics the trials report, ``results``: the
    family's result columns (all without their ``params.`` / ``metrics.`` prefix), for the shared
    view (see :func:`view_state`).
    """
    state = view_state(sweep, metric, mode, params or [], metrics or [metric], results)
    if sweep.tracking_uri.startswith(("http://", "https://")):
        share_view(sweep, state)
        base = sweep.tracking_uri.rstrip("/")
        print(f"the sweep is on a tracking server already: {runs_url(base, sweep)}")
        print(f"charts (parallel coordinates first): {runs_url(base, sweep, charts=True)}")
        print(f"compare the sweep's best runs: {compare_url(base, sweep, run_ids)}")
        print(WORKFLOW_HINT, flush=True)
        return 0
    if port == 0:
        port = free_port(host)
    elif port_taken(host, port):
        raise _taken(host, port)
    share_view(sweep, state)
    log = sweep_folder(sweep) / LOG_NAME
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(server_command(sweep, host, port), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    base = f"http://{host}:{port}"
    try:
        wait_serving(base, sweep, proc, log, host, port)
        print(f"runs of sweep {sweep.name} (best first): {runs_url(base, sweep)}")
        print(f"compare the sweep's best {len(run_ids)} runs: {compare_url(base, sweep, run_ids)}")
        print(f"charts (parallel coordinates of the swept parameters first): {runs_url(base, sweep, charts=True)}")
        print(f"the sweep's parent run: {run_url(base, sweep, sweep.parent_id)}")
        print("(the compare page picks its own first metric: under Metrics, remove it and add the sweep metric; "
              "the charts view above already plots the sweep metric)")
        print(WORKFLOW_HINT)
        print(f"MLflow's log: {log}; Ctrl-C stops the server", flush=True)
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_group(proc)
