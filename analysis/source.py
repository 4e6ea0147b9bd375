"""Where analysis reads from: a sweep's runs in an MLflow tracking store, as Polars frames.

A sweep is named by its folder (``runs/<name>``), its name under ``--storage``, or its name
with ``--tracking-uri`` for a server. The store is ``--tracking-uri``, else
``$MLFLOW_TRACKING_URI``, else the embedded default ``sqlite:///<storage>/<name>/mlflow.db``.
Its parent run is the run tagged ``dynsweep.kind = sweep`` named after the sweep; its trials
are the parent's child runs. Runs are fetched with MLflow's search API page by page (1,000
runs a page) into one frame: ``run_id, run_name, status, start_ms, end_ms``, then
``params.<key>`` (strings, as MLflow stores them), ``metrics.<key>`` (latest values, floats)
and ``tags.<key>``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .errors import AnalysisError

PAGE = 1000
SYSTEM_TAGS = ("mlflow.", "dynsweep.kind")
KEPT_TAGS = ("mlflow.source.git.commit",)
"""MLflow system tags analysis still reads (the code commit, for ``diff``)."""


@dataclass
class Sweep:
    """One sweep in a tracking store."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_id: str
    client: Any

    def runs(self, extra_filter: str = "") -> pl.DataFrame:
        """The sweep's trial runs (children of its parent run), one row each."""
        query = f"tags.`mlflow.parentRunId` = '{self.parent_id}'" + (f" and {extra_filter}" if extra_filter else "")
        return search_frame(self.client, [self.experiment_id], query)

    def parent(self) -> Any:
        return self.client.get_run(self.parent_id)

    def spec(self) -> dict[str, str]:
        """The sweep's spec as the parent run's flattened params (``space.lr.loguniform`` ...)."""
        return dict(self.parent().data.params)


MLFLOW_TABLES = ("alembic_version", "experiments", "runs")
"""Tables every MLflow SQLite store has (``alembic_version``: MLflow's schema migrations)."""


def sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for any other URI)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def store_problem(path: Path) -> str | None:
    """Why ``path`` is not an MLflow SQLite store, or None when it looks like one.

    Read-only and before MLflow opens it: MLflow would turn an empty or foreign SQLite file
    into a store (create its schema), and fail on anything else with a traceback. The file is
    opened through SQLite's read-only URI (``mode=ro``), so it stays byte-identical, unless a
    killed writer left a hot journal, which any open for writing (MLflow's too) rolls back first.
    """
    import sqlite3

    try:
        if not path.exists():
            return "no such file"
        if not path.is_file():
            return "a folder, not a file"
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        return f"cannot be read: {err.strerror or err}"
    if size == 0:
        return "an empty file"
    if head != b"SQLite format 3\x00":
        return "not a SQLite database"
    try:
        tables = _table_names(path, read_only=True)
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            return None  # being written right now: MLflow waits for it
        if "readonly" in str(err) and path.with_name(path.name + "-journal").exists():
            # A hot journal: a writer was killed mid-transaction (a SIGKILLed driver). SQLite
            # rolls it back on the first read-write open, as MLflow's own open would.
            try:
                tables = _table_names(path, read_only=False)
            except sqlite3.Error as err2:
                return f"not a readable SQLite database: {err2}"
        else:
            return f"not a readable SQLite database: {err}"
    except sqlite3.Error as err:
        return f"not a readable SQLite database: {err}"
    missing = [t for t in MLFLOW_TABLES if t not in tables]
    if missing:
        return (f"a SQLite database without MLflow's tables ({', '.join(missing)} missing; "
                f"it has {', '.join(sorted(tables)[:5]) or 'no tables'})")
    return None


def _table_names(path: Path, read_only: bool) -> set[str]:
    """The table names of the SQLite database at ``path`` (``mode=ro`` when ``read_only``)."""
    import sqlite3

    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    con = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        return {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
    finally:
        con.close()


def check_store(uri: str) -> str:
    """``uri``, after checking that a ``sqlite:///`` one names an MLflow store (other URIs are
    left to MLflow).

    Raises:
        AnalysisError: ``<file>: not an MLflow store (<why>)``.
    """
    path = sqlite_file(uri)
    if path is not None:
        why = store_problem(path)
        if why:
            raise AnalysisError(f"{path}: not an MLflow store ({why})" if why != "no such file" else
                                f"{path}: no MLflow store there (no such file)")
    return uri


def client_for(uri: str) -> Any:
    """An MLflow client on ``uri``, checked first (:func:`check_store`)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(check_store(uri))


def tracking_uri_for(sweep: str, storage: str = "runs", tracking_uri: str | None = None) -> str:
    """The one rule for where a sweep's runs are: ``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``,
    else the store recorded in the sweep's folder (``sweep.json``: a server, or ``embedded`` for
    the folder's own ``mlflow.db``), the folder being ``sweep`` itself or ``<storage>/<sweep>``."""
    if tracking_uri:
        return tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    for folder in (Path(sweep), Path(storage) / sweep):
        recorded = _recorded_uri(folder)
        if recorded:
            return recorded
        if (folder / "mlflow.db").is_file():
            return f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    raise AnalysisError(f"{sweep}: no MLflow store found (looked for {Path(sweep) / 'mlflow.db'} and "
                        f"{Path(storage) / sweep / 'mlflow.db'}); give --tracking-uri for a tracking server")


def _recorded_uri(folder: Path) -> str | None:
    """The tracking URI a sweep folder's ``sweep.json`` records (None when it has none or is unreadable)."""
    try:
        meta = json.loads((folder / "sweep.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    uri = meta.get("tracking_uri") if isinstance(meta, dict) else None
    if not isinstance(uri, str) or not uri:
        return None
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}" if uri == "embedded" else uri


def _recorded_parent(sweep: str, storage: str) -> str | None:
    """The parent run id a sweep folder's run map records (``mlflow_runs.json``)."""
    for folder in (Path(sweep), Path(storage) / sweep):
        try:
            parent = json.loads((folder / "mlflow_runs.json").read_bytes()).get("__sweep__")
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
        if isinstance(parent, str):
            return parent
    return None


def open_sweep(sweep: str, storage: str = "runs", tracking_uri: str | None = None) -> Sweep:
    """Find the sweep's parent run in its tracking store."""
    from mlflow.exceptions import MlflowException

    uri = tracking_uri_for(sweep, storage, tracking_uri)
    name = Path(sweep).resolve().name if Path(sweep).is_dir() else Path(sweep).name  # "." is a folder too
    client = client_for(uri)
    try:
        experiments = [e.experiment_id for e in client.search_experiments()]
        parents = client.search_runs(experiments, f"tags.`dynsweep.kind` = 'sweep' and attributes.run_name = "
                                     f"'{name.replace(chr(39), '')}'", max_results=10)
    except MlflowException as err:
        raise AnalysisError(f"{uri}: the MLflow store cannot be read ({str(err).splitlines()[0][:200]})") from None
    if len(parents) > 1:  # two sweeps of one name in one store: the folder's run map says which
        mine = _recorded_parent(sweep, storage)
        parents = [p for p in parents if p.info.run_id == mine]
        if not parents:
            raise AnalysisError(f"{uri}: several sweeps are named {name!r}; run the command on the sweep's folder "
                                "(its mlflow_runs.json names its parent run)")
    if not parents:
        known = [r.info.run_name for r in client.search_runs(experiments, "tags.`dynsweep.kind` = 'sweep'",
                                                              max_results=50)]
        raise AnalysisError(f"{uri}: no sweep named {name!r} (sweeps there: {', '.join(known) or 'none'})")
    parent = parents[0]
    return Sweep(name, uri, parent.info.experiment_id, parent.info.run_id, client)


def search_frame(client: Any, experiment_ids: list[str], query: str = "", run_view: int = 1) -> pl.DataFrame:
    """All runs matching ``query``, page by page, as one frame (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        page = client.search_runs(experiment_ids, query, run_view_type=run_view, max_results=PAGE, page_token=token)
        rows.extend(_row(run) for run in page)
        token = page.token
        if not token:
            break
    return frame(rows)


def _row(run: Any) -> dict[str, Any]:
    info, data = run.info, run.data
    row: dict[str, Any] = {"run_id": info.run_id, "run_name": info.run_name, "status": info.status,
                           "start_ms": info.start_time, "end_ms": info.end_time}
    row.update({f"params.{k}": v for k, v in data.params.items()})
    row.update({f"metrics.{k}": float(v) for k, v in data.metrics.items()})
    row.update({f"tags.{k}": v for k, v in data.tags.items() if not k.startswith(SYSTEM_TAGS) or k in KEPT_TAGS})
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows with differing keys as one frame: metrics Float64, everything else String."""
    if not rows:
        return pl.DataFrame({"run_id": [], "run_name": [], "status": []},
                            schema={"run_id": pl.String, "run_name": pl.String, "status": pl.String})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    schema = {k: pl.Float64 if k.startswith("metrics.") else pl.Int64 if k.endswith("_ms") else pl.String
              for k in keys}
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in keys}, schema=schema)


def param_value(text: str | None) -> Any:
    """An MLflow param string back as a number / bool / list where it is one."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        if text in ("True", "False"):
            return text == "True"
        return text


def derived_params(runs: pl.DataFrame) -> set[str]:
    """The ``params.*`` columns a family derived from the config (tag ``dynsweep.derived_params``):
    they follow the swept parameters, so tables of what varies leave them out."""
    derived: set[str] = set()
    if "tags.dynsweep.derived_params" in runs.columns:
        for names in runs["tags.dynsweep.derived_params"].drop_nulls().unique().to_list():
            derived |= {f"params.{n}" for n in str(names).split(",") if n}
    return derived


def varying_params(runs: pl.DataFrame) -> list[str]:
    """The ``params.*`` columns whose value is not the same in every run (derived ones left out)."""
    derived = derived_params(runs)
    return [c for c in runs.columns if c.startswith("params.") and c not in derived and runs[c].n_unique() > 1]


OUTCOME_WORDS = {"completed": "finished", "stopped_early": "stopped early", "failed": "failed",
                 "timeout": "failed", "interrupted": "interrupted"}
"""The driver's ``dynsweep.outcome`` tag -> the word analysis tables print."""


def outcome(row: dict[str, Any]) -> str:
    """How a run ended, as analysis prints it: finished, stopped early, failed, interrupted (from the
    ``dynsweep.outcome`` tag; runs recorded before it by their status and older tags)."""
    tag = row.get("tags.dynsweep.outcome")
    if tag in OUTCOME_WORDS:
        return OUTCOME_WORDS[tag]
    if row["status"] == "FAILED":
        return "failed"
    if row.get("tags.stopped_early") == "true":
        return "stopped early"
    if row["status"] == "FINISHED":
        return "finished"
    return "interrupted" if row.get("tags.interrupted") == "true" else str(row["status"]).lower()


def ranked(runs: pl.DataFrame) -> pl.Expr:
    """Runs whose sweep metric is a result: finished or stopped early (never failed or interrupted)."""
    if "tags.dynsweep.outcome" in runs.columns:
        tag = pl.col("tags.dynsweep.outcome")
        new = tag.is_in(["completed", "stopped_early"])
        old = tag.is_null() & (pl.col("status") == "FINISHED")
    else:
        new, old = pl.lit(False), pl.col("status") == "FINISHED"
    if "tags.stopped_early" in runs.columns:
        old = old | (pl.col("tags.stopped_early") == "true")
    return new | old
