"""Driver-side MLflow tracking: one parent run per sweep, one child run per trial.

One writer (the driver), so it works with the embedded SQLite store and with an ``mlflow
server``. The trial -> run map is kept in ``<sweep>/mlflow_runs.json`` (written atomically), so
a retried or resumed trial continues its own run and never opens a second one.

The experiment is a model-training experiment (``mlflow.experimentKind``), so MLflow's UI opens
on its runs table. Child runs are named by trial id and the swept values that tell them apart
(``00003 head=logmag seg=10``); they get the trial's flattened params, the family's numeric
metrics by ``step`` (not Tune's bookkeeping, and not a metric that only repeats its param), the
status and ``dynsweep.outcome`` (:mod:`search.outcome`), tags ``trial_id``, ``failure_class``,
``failure_message``, ``trial_seconds``, and, from the final checkpoint, the ``artifacts/`` the
family wrote plus the checkpoint itself. The parent run names the best run (tag
``dynsweep.best_run_id`` and a link in its description).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from ray.tune import Callback

from trainables.common.errors import ConfigError

from .failures import classify_error_text
from .journal import Journal
from .outcome import OUTCOME_TAG, STATUS, ended_normally
from .provenance import command_line, run_tags
from .trainable import DATASET_TAG, TAG_PREFIX

# mlflow (about 1 s to import) is imported on the writer thread, while Ray starts.

PARENT_KEY = "__sweep__"
MAX_BATCH = 900
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""MLflow 3's UI opens a model-training experiment on its runs table (a GenAI one on traces)."""
RUN_NAME_MAX = 120
PROBE_EVERY_S = float(os.environ.get("DYNSWEEP_MLFLOW_RETRY_S", "30"))
"""While MLflow is unreachable: seconds between attempts to reach it again (``$DYNSWEEP_MLFLOW_RETRY_S``)."""
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
"""MLflow's client retries a failed request for about 4 minutes by default; a sweep writes on
one thread, so an unreachable server would stall every write that long. With these (unless
set in the environment) a write gives up within a minute and the tracker goes offline:
everything is in the journal, replayed when the server answers again."""


def default_tracking_uri(sweep_dir: Path) -> str:
    """The embedded store: a SQLite file in the sweep folder."""
    return f"sqlite:///{(sweep_dir / 'mlflow.db').resolve()}"


DERIVED_TAG = "dynsweep.derived_params"
"""The names of a run's parameters that the family derived from its config (not swept: analysis
leaves them out of the varying parameters, and they can still be plotted by name)."""
ARTIFACTS_TAG = "dynsweep.artifacts"
"""Set on a trial's run when the sweep kept its checkpoint off the tracking store (``model`` or ``none``)."""


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as flat ``a.b`` keys with string values (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return out


def params_and_tags(family: str, config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """A trial's MLflow params (the resolved config flattened, plus the family's derived parameters)
    and the tag naming the derived ones (:data:`DERIVED_TAG`). A config the family's hook refuses
    gets no derived parameters (the trial fails with that error)."""
    from trainables.registry import entry, load

    hook = entry(family).derived_params
    derived: dict[str, Any] = {}
    if hook is not None:
        with contextlib.suppress(ConfigError):
            derived = dict(load(hook)(config))
    return flatten({**derived, **config}), ({DERIVED_TAG: ",".join(sorted(derived))} if derived else {})


def family_tags(family: str) -> dict[str, str]:
    """What analysis needs to know of the family without importing it: the plot kinds that
    apply to it and the metric columns ``analyze`` shows (comma-separated)."""
    from trainables.registry import entry

    record = entry(family)
    return {"dynsweep.plot_kinds": ",".join(record.all_plot_kinds()),
            "dynsweep.table_columns": ",".join(record.table_columns)}


def check_name_free(uri: str, experiment: str, name: str, sweep_dir: Path) -> None:
    """Refuse to launch a sweep into a store whose experiment already holds another sweep of the
    same name (its runs would be mixed with this one's in every analysis by name).

    Raises:
        ConfigError: naming the store, the experiment and the other sweep's parent run.
    """
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return  # a new embedded store holds nothing yet
    from mlflow.tracking import MlflowClient

    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)
    client = MlflowClient(uri)
    try:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return
        parents = client.search_runs([exp.experiment_id], f"tags.`dynsweep.kind` = 'sweep' and "
                                     f"attributes.run_name = '{name}'", max_results=5)
    except Exception as err:  # noqa: BLE001 - a store that does not answer: say so before anything starts
        raise ConfigError(f"MLflow at {uri} cannot be reached ({type(err).__name__}: {_first_line(err)[:200]}); "
                          "start it, or choose another store with --tracking-uri") from None
    mine = RunMap(sweep_dir / "mlflow_runs.json").data.get(PARENT_KEY)
    others = [p.info.run_id for p in parents if p.info.run_id != mine]
    if others:
        raise ConfigError(f"{uri}: experiment {experiment!r} already holds a sweep named {name!r} (parent run "
                          f"{others[0][:8]}) from another sweep folder; choose another name (--set name=...) "
                          "or another store")


def run_name(trial_id: str, config: dict[str, Any], swept: dict[str, list[Any]]) -> str:
    """``<trial id> key=value ...`` over the swept parameters, values shortened (a prefix every
    choice of a parameter shares is dropped, numbers to 3 digits), within RUN_NAME_MAX characters."""
    parts = [trial_id]
    for key, choices in swept.items():
        if key in config and len(choices) != 1:
            parts.append(f"{_short_key(key)}={_short_value(config[key], choices)}")
    return " ".join(parts)[:RUN_NAME_MAX]


def _short_key(key: str) -> str:
    """``segment_length`` -> ``seg_len``: each word to its first three letters, for long names."""
    return key if len(key) <= 8 else "_".join(w[:3] for w in key.split("_"))


def _short_value(value: Any, choices: list[Any]) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    words = [str(c) for c in choices if isinstance(c, str)]
    if isinstance(value, str) and len(words) > 1:
        prefix = os.path.commonprefix(words)
        prefix = prefix[:prefix.rfind("_") + 1] if "_" in prefix else ""
        text = text[len(prefix):] or text
    return text


def _repeats_param(key: str, value: float, config: dict[str, Any]) -> bool:
    """A reported value that only repeats the run's param of the same name (e.g. a constant ``lr``)."""
    param = config.get(key)
    return isinstance(param, (int, float)) and not isinstance(param, bool) and float(param) == float(value)


def journal_outcomes(sweep_dir: Path) -> dict[str, str]:
    """Trial id -> outcome of the trials that ended in earlier sessions of the sweep (journal), with
    the statuses of journals written before outcomes had a tag mapped onto outcomes."""
    out = {}
    for trial_id, record in Journal(sweep_dir).read().items():
        if record.end is None:
            continue
        tags = record.end.get("tags", {})
        out[trial_id] = tags.get(OUTCOME_TAG) or {"FINISHED": "completed", "FAILED": "failed"}.get(
            record.end["status"], "stopped_early" if tags.get("stopped_early") == "true" else "interrupted")
    return out


class RunMap:
    """trial id -> MLflow run id, persisted atomically in the sweep folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def __getitem__(self, key: str) -> str:
        return self.data[key]

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def set(self, key: str, run_id: str) -> None:
        self.data[key] = run_id
        self._write()

    def remove(self, key: str) -> None:
        self.data.pop(key, None)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)


@dataclass
class Offline:
    """MLflow stopped answering (monotonic seconds)."""

    since: float
    reason: str
    next_probe: float
    skipped: int = 0


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""


@dataclass
class Resumed:
    """What a resumed tracker needs to know about the sweep it continues."""

    known: dict[str, str]
    """trial id -> status in Tune's last experiment snapshot"""
    completed: dict[str, dict[str, Any]] = field(default_factory=dict)
    """trials that finished after that snapshot -> their final (family) result"""
    restarted: dict[str, str] = field(default_factory=dict)
    """``--restart-errored``: experiment tag -> id of the errored trial that Tune restarts under a
    new id (its MLflow run continues with the new trial)"""


class MlflowTracker(Callback):
    """The Tune callback (driver side) that writes the sweep to MLflow."""

    def __init__(self, tracking_uri: str, experiment: str, sweep_dir: Path, sweep_params: dict[str, Any],
                 family: str, max_t: int | None = None, time_attr: str = "step",
                 timed_out: set[str] | None = None, resume: Resumed | None = None, metric: str | None = None,
                 mode: str = "min", swept: dict[str, list[Any]] | None = None,
                 resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None, command: str = "") -> None:
        """``resume``: on ``dynsweep resume``, what Tune's last snapshot knows; the tracker then
        first brings MLflow up to date from the journal (:meth:`_reconcile`)."""
        self.client: Any = None
        self.tracking_uri = tracking_uri
        self.runs = RunMap(sweep_dir / "mlflow_runs.json")
        self.family = family
        self.max_t = max_t
        self.time_attr = time_attr
        self.failures: dict[str, tuple[str, str]] = {}
        self.metric, self.mode = metric, mode
        self.swept = swept or {}
        self._resolve = resolve
        self.provenance = run_tags(command or command_line())
        self.base = dict(sweep_params.get("base") or {})
        self.artifacts = str((sweep_params.get("tracking") or {}).get("artifacts", "all"))
        self.outcomes: dict[str, str] = journal_outcomes(sweep_dir) if resume is not None else {}
        self._stop_seen: set[str] = set()  # trials a scheduler or stopper stopped at some result
        self.timed_out = timed_out if timed_out is not None else set()
        self.experiment_id = ""
        self.parent_id = ""
        self._curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
        self._ended: set[str] = set()
        self._started: set[str] = set()
        self._logged: dict[str, int] = {}  # trial id -> last step sent to MLflow (retries re-report steps)
        self._resume = resume
        self._closed: set[str] = set()  # finished before a resume: nothing more to write
        self.journal = Journal(sweep_dir)
        # One writer thread: Tune's event loop never waits for MLflow (SQLite or HTTP), and the
        # store is opened (a new SQLite database takes seconds) while Ray starts.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynsweep-mlflow")
        self._errors: list[BaseException] = []
        self._offline: Offline | None = None
        self._dropped: set[str] = set()  # journaled trials a resume dropped (Tune will not run them)
        self._open_args = (experiment, sweep_dir, sweep_params)
        for key, value in HTTP_SETTINGS.items():
            os.environ.setdefault(key, value)
        self._submit(self._open, experiment, sweep_dir, sweep_params)

    def _open(self, experiment: str, sweep_dir: Path, sweep_params: dict[str, Any]) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars in a sweep's output
        from mlflow.tracking import MlflowClient

        from .store_template import prepare_store

        prepare_store(self.tracking_uri)
        self.client = MlflowClient(self.tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
            experiment, artifact_location=(sweep_dir / "mlartifacts").resolve().as_uri()
            if self.tracking_uri.startswith("sqlite") else None, tags=EXPERIMENT_KIND)
        if exp is not None and exp.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
            for key, value in EXPERIMENT_KIND.items():
                self.client.set_experiment_tag(self.experiment_id, key, value)
        if PARENT_KEY not in self.runs:
            parent = self.client.create_run(self.experiment_id, run_name=sweep_dir.name,
                                            tags={"dynsweep.kind": "sweep", "dynsweep.family": self.family,
                                                  **self.provenance, **family_tags(self.family)})
            self.runs.set(PARENT_KEY, parent.info.run_id)
            self._log(parent.info.run_id, params=flatten(sweep_params))
            if (sweep_dir / "spec.yaml").is_file():
                self.client.log_artifact(parent.info.run_id, str(sweep_dir / "spec.yaml"))
        else:
            self.client.update_run(self.runs[PARENT_KEY], status="RUNNING")
        self.parent_id = self.runs[PARENT_KEY]
        if self._resume is not None:
            self._reconcile(self._resume)

    def _reconcile(self, resume: Resumed) -> None:
        """After a driver died: write to MLflow what the journal has and MLflow lacks.

        ``known``: trial id -> status in Tune's last experiment snapshot. A trial the snapshot
        does not know started after it; Tune will not resume it (its searcher state is older), so
        its run is deleted. Other trials get their missing results and, if they ended, their end
        (tags, artefacts, status) (:meth:`_replay`). Trials that finished although the snapshot
        has them unfinished are closed: Tune re-reports their final result (see
        ``search.trainable``) and their run is left as it is.
        """
        known = resume.known
        journal = self.journal.read()
        self._dropped.update(t for t in journal if t not in known)
        for trial_id in [t for t in journal if t not in known]:
            if trial_id in self.runs:
                self.client.delete_run(self.runs[trial_id])
                self.runs.remove(trial_id)
        self._replay({t: r for t, r in journal.items() if t in known}, known, rebuild_curves=True)
        self._closed.update(t for t in journal if t in resume.completed)
        for trial_id, record in journal.items():  # failures of the dead driver, for the summary
            tags = (record.end or {}).get("tags") or {}
            if trial_id in known and "failure_class" in tags:
                self.failures.setdefault(trial_id, (tags["failure_class"], tags.get("failure_message", "")))

    def _replay(self, journal: dict[str, Any], known: dict[str, str] | None, rebuild_curves: bool) -> None:
        """Bring MLflow up to the journal: every trial's run (created if missing), every journaled
        result whose step MLflow lacks (gaps in the middle too; nothing written twice), and the
        end of every trial that ended (``known``: Tune's snapshot, whose ended trials count as
        ended too)."""
        for trial_id, record in journal.items():
            run_id = self.run_id(trial_id, record.name, record.config)
            have = self._logged_steps(run_id)
            missing = [r for r in record.results if r[0] not in have]
            metrics = [(k, v, t, step) for step, t, values, _ in missing for k, v in values.items()]
            tags = {k: v for _, _, _, t in missing for k, v in t.items()}
            datasets = {k.removeprefix(DATASET_TAG): v for k, v in tags.items() if k.startswith(DATASET_TAG)}
            tags = {k: v for k, v in tags.items() if not k.startswith(DATASET_TAG)}
            if metrics or tags:
                self._log(run_id, metrics=metrics, tags=tags)
            if datasets:
                self._log_datasets(run_id, datasets)
            self._logged[trial_id] = max([self._logged.get(trial_id, -1)] + [r[0] for r in record.results])
            if rebuild_curves:
                curves = self._curves.setdefault(trial_id, {})
                for step, _, values, _ in record.results:
                    for key, value in values.items():
                        if "loss" in key and "/" not in key:
                            curves.setdefault(key, []).append((step, value))
            end = record.end
            status = (known or {}).get(trial_id)
            if end is None and status in ("TERMINATED", "ERROR"):
                end = {"status": "FINISHED" if status == "TERMINATED" else "FAILED", "tags": {}, "checkpoint": None}
            if end is not None and self.client.get_run(run_id).info.status == "RUNNING":
                curves = {k: sorted(set(v)) for k, v in self._curves.get(trial_id, {}).items()}
                self._write_end(run_id, record.name, end["status"], end["tags"], end["checkpoint"], curves,
                                end.get("output"))

    def _adopt(self, old: str, new: str) -> None:
        """A restarted errored trial (new id, same configuration) continues the old one's run."""
        if old in self.runs and new not in self.runs:
            run_id = self.runs[old]
            self.runs.set(new, run_id)
            self.runs.remove(old)
            self._log(run_id, tags={"trial_id": new, "restarted": "true", "previous_trial_id": old})
    def _logged_steps(self, run_id: str) -> set[int]:
        """The steps MLflow holds for a run (the reporter's ``step`` comes with every result, and a
        result's metrics are written in one batch)."""
        return {m.step for m in self.client.get_metric_history(run_id, "step")}

    def _log(self, run_id: str, metrics: list[tuple[str, float, int, int]] | None = None,
             params: dict[str, str] | None = None, tags: dict[str, str] | None = None) -> None:
        """Batched writes of (key, value, timestamp ms, step) metrics, params and tags."""
        from mlflow.entities import Metric, Param, RunTag

        metrics = [Metric(*m) for m in metrics or []]
        plist = [Param(k, v[:6000]) for k, v in (params or {}).items()]
        tlist = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
        for i in range(0, max(len(metrics), 1), MAX_BATCH):
            self.client.log_batch(run_id, metrics=metrics[i:i + MAX_BATCH], params=plist[:100] if i == 0 else [],
                                  tags=tlist if i == 0 else [])
        for i in range(100, len(plist), 100):
            self.client.log_batch(run_id, params=plist[i:i + 100])

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles callbacks with the experiment state: leave the thread and client out."""
        state = dict(self.__dict__)
        for key in ("_writer", "client", "_errors", "_resume", "_offline"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynsweep-mlflow")
        self._errors = []
        self._resume = None
        self._offline = None
        self.__dict__.setdefault("_dropped", set())
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)

    def _submit(self, fn: Any, *args: Any) -> None:
        self._writer.submit(self._guarded, fn, *args)

    def _guarded(self, fn: Any, *args: Any) -> None:
        """Run one queued write on the writer thread. While MLflow is unreachable, writes are
        skipped (the journal has what they carry) and MLflow is tried again every PROBE_EVERY_S;
        once it answers, everything the journal holds and MLflow lacks is written
        (:meth:`_replay`), which includes what the skipped writes carried."""
        if self._offline is not None:
            self._offline.skipped += 1
            if time.monotonic() < self._offline.next_probe or not self._reconnect():
                return
            return  # the replay wrote what this write carries
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - reported at the end, or an outage
            if self._reachable():
                self._errors.append(err)  # a write MLflow refused: reported at the end of the sweep
                return
            self._offline = Offline(time.monotonic(), f"{type(err).__name__}: {_first_line(err)}",
                                    next_probe=time.monotonic() + PROBE_EVERY_S, skipped=1)
            print(f"\ndynsweep: MLflow at {self.tracking_uri} is unreachable ({self._offline.reason[:200]}); "
                  f"the sweep goes on, its records are kept in {self.journal.path} and written to MLflow "
                  f"once it is back (tried every {PROBE_EVERY_S:.0f} s)", file=sys.stderr, flush=True)

    def _reachable(self) -> bool:
        """Whether MLflow answers now: an HTTP server's ``/health`` (one try, 5 s), else a read."""
        try:
            if self.tracking_uri.startswith(("http://", "https://")):
                import urllib.request

                with urllib.request.urlopen(self.tracking_uri.rstrip("/") + "/health", timeout=5) as response:
                    return bool(response.status == 200)
            from mlflow.tracking import MlflowClient

            client = self.client or MlflowClient(self.tracking_uri)
            if self.experiment_id:
                client.get_experiment(self.experiment_id)
            else:
                client.search_experiments(max_results=1)
            return True
        except Exception:  # noqa: BLE001 - any failure to answer counts as unreachable
            return False

    def _reconnect(self) -> bool:
        """Try MLflow again; if it answers, write all the journal holds that it lacks."""
        offline = self._offline
        assert offline is not None
        try:
            if not self._reachable():
                return False
            try:
                if not self.parent_id:
                    self._open(*self._open_args)
                journal = {t: r for t, r in self.journal.read().items() if t not in self._dropped}
                self._replay(journal, None, rebuild_curves=False)
            except Exception:  # noqa: BLE001 - gone again: stay offline
                return False
        finally:  # counted from the end of this attempt: a slow attempt is not repeated at once
            offline.next_probe = time.monotonic() + PROBE_EVERY_S
        print(f"\ndynsweep: MLflow at {self.tracking_uri} is reachable again after "
              f"{time.monotonic() - self._offline.since:.0f} s; the journal's records were written to it",
              file=sys.stderr, flush=True)
        self._offline = None
        return True

    def status_note(self) -> str:
        """For the progress line: empty, or how long MLflow has been unreachable."""
        offline = self._offline
        if offline is None:
            return ""
        return (f"MLflow unreachable for {time.monotonic() - offline.since:.0f} s, {offline.skipped} writes kept "
                f"in the journal")

    def pending(self) -> int:
        """Writes MLflow has not had (it was unreachable at the end); ``dynsweep resume`` writes them."""
        return self._offline.skipped if self._offline is not None else 0

    def abandon(self, started: bool) -> None:
        """The sweep stopped with an error: stop writing (what is queued is in the journal). A sweep
        that never started a trial leaves no parent run in an MLflow server either."""
        self._writer.shutdown(wait=True, cancel_futures=True)
        if not started and self.parent_id and self._offline is None:
            with contextlib.suppress(Exception):
                self.client.delete_run(self.parent_id)
        self.journal.close()

    def run_id(self, trial_id: str, name: str, config: dict[str, Any]) -> str:
        """The child run of a trial (created on first sight, reused on retries and resumes).

        Runs on the writer thread only.
        """
        if trial_id not in self.runs and self._resume is not None:  # created, then the driver died
            found = self.client.search_runs([self.experiment_id], f"tags.trial_id = '{trial_id}'", max_results=1)
            if found:
                self.runs.set(trial_id, found[0].info.run_id)
        if trial_id not in self.runs:
            run = self.client.create_run(self.experiment_id, run_name=run_name(trial_id, config, self.swept),
                                         tags={"mlflow.parentRunId": self.parent_id, "trial_id": trial_id,
                                               "dynsweep.family": self.family, **self.provenance})
            self.runs.set(trial_id, run.info.run_id)
            resolved = self._resolved(config)
            params, tags = params_and_tags(self.family, resolved)
            self._log(run.info.run_id, params=params, tags=tags)
            self.client.log_text(run.info.run_id, yaml.safe_dump(resolved, sort_keys=False), "config.yaml")
        return self.runs[trial_id]

    def _resolved(self, config: dict[str, Any]) -> dict[str, Any]:
        """The trial's full config (family defaults + base + sampled), or the sampled values when the
        family refuses the combination (the trial then fails with that error)."""
        try:
            return self._resolve(config) if self._resolve is not None else config
        except ConfigError:
            return config

    def _log_datasets(self, run_id: str, hashes: dict[str, str]) -> None:
        """The trial's datasets as MLflow dataset inputs (name, content hash as digest)."""
        from mlflow.entities import Dataset, DatasetInput

        inputs = [DatasetInput(Dataset(name=name, digest=digest[:36], source_type="dynsweep",
                                       source=json.dumps({"name": name, "content_sha256": digest})))
                  for name, digest in sorted(hashes.items())]
        self.client.log_inputs(run_id, datasets=inputs)

    def _ids(self, trial: Any) -> tuple[str, str, dict[str, Any]]:
        return trial.trial_id, str(trial), dict(trial.config)

    # --- Tune hooks (called on Tune's event loop: they only queue work) ----------------
    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._started.add(trial.trial_id)
        if trial.trial_id in self._closed:
            return
        ids = self._ids(trial)
        previous = self._resume.restarted.get(trial.experiment_tag) if self._resume is not None else None
        if previous is not None and previous != trial.trial_id:
            self._submit(self._adopt, previous, trial.trial_id)
        self.journal.append({"e": "start", "trial": ids[0], "name": ids[1], "config": ids[2]})
        self._submit(lambda: self.client.update_run(self.run_id(*ids), status="RUNNING"))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if result.get("done"):  # Tune marks the result at which a scheduler or stopper stops the trial
            self._stop_seen.add(trial.trial_id)
        step = int(result.get("step", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        config = {**self.base, **trial.config}
        metrics = [(k, float(v), now, step) for k, v in family_result(result).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
                   and not _repeats_param(k, v, config)]
        tags = {k.removeprefix(TAG_PREFIX): v for k, v in result.items()
                if isinstance(v, str) and k.startswith(TAG_PREFIX)}
        if step <= self._logged.get(trial.trial_id, -1):
            return  # a retry or resume re-running steps after its checkpoint: MLflow has them
        self._logged[trial.trial_id] = step
        self.journal.append({"e": "result", "trial": trial.trial_id, "step": step, "t": now,
                             "metrics": {k: v for k, v, _, _ in metrics}, "tags": tags})
        curves = self._curves.setdefault(trial.trial_id, {})
        for key, value, _, _ in metrics:
            if "loss" in key and "/" not in key:
                curves.setdefault(key, []).append((step, value))
        ids = self._ids(trial)
        datasets = {k.removeprefix(DATASET_TAG): v for k, v in tags.items() if k.startswith(DATASET_TAG)}
        tags = {k: v for k, v in tags.items() if not k.startswith(DATASET_TAG)}
        self._submit(lambda: self._log(self.run_id(*ids), metrics=metrics, tags=tags))
        if datasets:
            self._submit(lambda: self._log_datasets(self.run_id(*ids), datasets))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        if trial.trial_id in self.timed_out:
            seconds = float(last.get("time_total_s", 0.0))
            self.failures[trial.trial_id] = ("timeout", f"stopped after {seconds:.1f} s (trial_time_limit_s)")
            self._finish(trial, "timeout", {"failure_class": "timeout",
                                            "failure_message": self.failures[trial.trial_id][1]})
            return
        if not last.get("done", False):
            self._finish(trial, "interrupted", {})
            return
        reached = last.get(self.time_attr, last.get("step"))
        self._finish(trial, ended_normally(trial.trial_id in self._stop_seen, reached, self.max_t), {})

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        failure, message = failure_of(trial)
        self.failures[trial.trial_id] = (failure, message)
        self._finish(trial, "failed", {"failure_class": failure, "failure_message": message[:2000]})

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        failure, message = failure_of(trial)
        ids = self._ids(trial)
        self._submit(lambda: self._log(self.run_id(*ids), tags={"last_retry_failure": f"{failure}: {message[:500]}"}))

    @property
    def started(self) -> set[str]:
        """Trials that ran in this session (restored finished ones did not)."""
        return set(self._started)

    def end_unfinished(self, trials: list[Any]) -> None:
        """End the runs of trials Tune stopped without a callback (Ctrl-C): KILLED, interrupted."""
        for trial in trials:
            if trial.trial_id in self._started and trial.trial_id not in self._ended:
                self._finish(trial, "interrupted", {})

    def _finish(self, trial: Any, outcome: str, tags: dict[str, str]) -> None:
        self._ended.add(trial.trial_id)
        self.outcomes[trial.trial_id] = outcome
        if trial.trial_id in self._closed:
            return
        status = STATUS[outcome]
        last = trial.last_result or {}
        tags = {**tags, OUTCOME_TAG: outcome, "trial_seconds": f"{float(last.get('time_total_s', 0.0)):.3f}"}
        checkpoint = trial.checkpoint
        path = checkpoint.path if checkpoint is not None and checkpoint.path else None
        ids = self._ids(trial)
        curves = {k: list(v) for k, v in self._curves.get(trial.trial_id, {}).items()}
        output = _output_file(trial)
        self.journal.append({"e": "end", "trial": ids[0], "status": status, "tags": tags, "checkpoint": path,
                             "result": family_result(last), "output": output})
        self._submit(lambda: self._write_end(self.run_id(*ids), ids[1], status, tags, path, curves, output))

    def _write_end(self, run_id: str, title: str, status: str, tags: dict[str, str], checkpoint: str | None,
                   curves: dict[str, list[tuple[int, float]]], output: str | None = None) -> None:
        run = self.client.get_run(run_id)
        for stale in ("failure_class", "failure_message"):  # from an earlier attempt that failed
            if stale in run.data.tags and stale not in tags:
                self.client.delete_tag(run_id, stale)
        outcome = tags.get(OUTCOME_TAG)
        before = f"{self.metric}_before_failure"
        finite = [m for m in self.client.get_metric_history(run_id, self.metric) if math.isfinite(m.value)] \
            if outcome in ("failed", "timeout") and self.metric in run.data.metrics else []
        if finite and not any(m.step >= max(f.step for f in finite) for m in
                              (self.client.get_metric_history(run_id, before) if before in run.data.metrics else [])):
            last = max(finite, key=lambda m: (m.step, m.timestamp))  # written once, even if the end is written again
            now = int(time.time() * 1000)
            self._log(run_id, metrics=[(before, last.value, now, last.step),
                                       (self.metric, math.nan, max(now, last.timestamp + 1), last.step)])
        self._log(run_id, tags=tags if self.artifacts == "all" else {**tags, ARTIFACTS_TAG: self.artifacts})
        if checkpoint and os.path.isdir(checkpoint) and self.artifacts != "none":
            if self.artifacts == "all":  # "model": big sweeps keep checkpoints and per-point files on disk only
                self.client.log_artifacts(run_id, checkpoint, artifact_path="checkpoint")
            if os.path.isfile(os.path.join(checkpoint, "artifacts", "model.pt")):  # runs:/<run_id>/model
                try:
                    from search.model_export import log_model

                    log_model(self.client, run_id, os.path.join(checkpoint, "artifacts"))
                except Exception as err:  # noqa: BLE001 - a model that cannot be logged never fails the sweep
                    reason = f"{type(err).__name__}: {err}".splitlines()[0][:500]
                    self._log(run_id, tags={"model_export_error": reason})
        if output and os.path.isfile(output):
            self.client.log_artifact(run_id, output)
        self._log_curves(run_id, title, curves)
        self.client.set_terminated(run_id, status)

    def _log_curves(self, run_id: str, title: str, curves: dict[str, list[tuple[int, float]]]) -> None:
        """A PNG of every loss-like metric against step (what users plot by hand first)."""
        if not curves:
            return
        from matplotlib.figure import (
            Figure,  # the object API: no pyplot state, safe off the main thread
        )

        fig = Figure(figsize=(6, 4))
        ax = fig.subplots()
        for key, points in sorted(curves.items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if all(p[1] > 0 for pts in curves.values() for p in pts):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
        ax.set_title(title)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "loss_curve.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            self.client.log_artifact(run_id, str(path))

    def _name_best(self, trial_id: str, value: float) -> None:
        """Tags ``dynsweep.best_run_id``/``best_trial``/``best_value`` and a description with a link."""
        from analysis.ui import WORKFLOW  # the UI's "Model training" side bar, not its GenAI view

        run_id = self.runs[trial_id]
        name = self.client.get_run(run_id).info.run_name
        link = f"#/experiments/{self.experiment_id}/runs/{run_id}?{urllib.parse.urlencode(WORKFLOW)}"
        note = (f"Best run: [{name}]({link}) with {self.metric} = {value:.6g} ({self.mode}imised).\n\n"
                f"Outcomes are in each run's `{OUTCOME_TAG}` tag: `completed` and `stopped_early` runs are results; "
                "failed runs are never ranked (their metric is NaN after the failure). A metric that a run does not "
                "report at all (one that only some models have) also reads NaN on MLflow's compare page. The "
                "sweep's table is the artefact `summary.csv`; plots are under `plots/`.")
        self._log(self.parent_id, tags={"dynsweep.best_run_id": run_id, "dynsweep.best_trial": trial_id,
                                        "dynsweep.best_value": f"{value:.9g}", "mlflow.note.content": note})

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._writer.submit(lambda: None).result()

    def finish_sweep(self, summary: dict[str, float], table_path: Path | None, status: str = "FINISHED",
                     best: tuple[str, float] | None = None) -> None:
        """Write the sweep's totals and table to the parent run, name its best run (``best``: trial
        id and sweep-metric value), end it, and drain the queue. If MLflow is unreachable (tried
        once more now), nothing is written: :meth:`pending` says so, and ``dynsweep resume``
        writes it all from the journal later. Writes MLflow refused: :meth:`write_errors`."""
        self.flush()
        if self._offline is not None:
            self._offline.next_probe = 0.0
            self._writer.submit(self._reconnect).result()
        if self._offline is None:
            self._writer.submit(self._guarded, self._finish_parent, summary, table_path, status, best).result()
        self._writer.shutdown(wait=True)
        self.journal.close()

    def write_errors(self) -> str:
        """Empty, or a line on the writes MLflow refused (the sweep itself went on)."""
        if not self._errors:
            return ""
        first = self._errors[0]
        return (f"{len(self._errors)} MLflow writes failed (first: {type(first).__name__}: {_first_line(first)[:300]}); "
                "the journal keeps the sweep's records")

    def _finish_parent(self, summary: dict[str, float], table_path: Path | None, status: str,
                       best: tuple[str, float] | None) -> None:
        self._log(self.parent_id, metrics=[(k, float(v), int(time.time() * 1000), 0) for k, v in summary.items()])
        if best is not None and best[0] in self.runs:
            self._name_best(*best)
        if table_path is not None and table_path.exists():
            self.client.log_artifact(self.parent_id, str(table_path))
        self.client.set_terminated(self.parent_id, status)


TUNE_KEYS = frozenset({"training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "date", "done",
                       "trial_id", "pid", "hostname", "node_ip", "config", "experiment_tag", "time_since_restore",
                       "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "experiment_id"})


def family_result(result: dict[str, Any]) -> dict[str, Any]:
    """A Tune result without the keys Tune adds itself: what the family reported."""
    return {k: v for k, v in result.items() if k not in TUNE_KEYS and isinstance(v, (int, float, str, bool))}


def _output_file(trial: Any) -> str | None:
    """The trial's ``output.log`` (:mod:`search.trial_output`), if its folder is known."""
    from .trial_output import OUTPUT_FILE

    folder = _trial_folder(trial)
    return os.path.join(folder, OUTPUT_FILE) if folder else None


def failure_of(trial: Any) -> tuple[str, str]:
    """``(failure class, first line of the message)`` of an errored trial (also after Ray has shut
    down: a sweep's summary is written then, and a resumed sweep's trials that failed before it
    are known only from the error file Tune left in their folders)."""
    try:
        path = trial.error_file
    except Exception:  # noqa: BLE001 - Tune asks Ray for a session folder it no longer has
        name = getattr(getattr(trial, "run_metadata", None), "error_filename", None)
        folder = _trial_folder(trial)
        path = os.path.join(folder, name) if folder and name else None
    return classify_error_text(Path(path).read_text(errors="replace") if path and os.path.exists(path) else "")


def _trial_folder(trial: Any) -> str | None:
    """The trial's folder in the sweep's storage, or None when it never got one."""
    try:
        return str(trial.path) if trial.path else None
    except Exception:  # noqa: BLE001 - a trial that never got a folder
        return None
