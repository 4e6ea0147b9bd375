"""Bad files in sweep folders, bad stores, bad checkpoints and bad option values: one line, exit 2,
nothing written (issue 19). Sweep folders are written by hand (no Ray): ``sweep.json``,
``spec.yaml``, Tune's experiment state, the run map and the journal, as a driver leaves them."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from search.cli import main
from search.journal import JOURNAL, Journal
from search.resume import check_versions
from search.sweep_folder import LOCK, META, RUN_MAP, SPEC, LockUnsupportedError, SweepFolder, sha256_file
from search.sweeps_cmd import status_facts, sweep_facts
from search.version import package_version
from trainables.common.errors import DynsweepError
from trainables.common.progress import Progress

SPEC_RAW = {"name": "s1", "family": "dummy", "base": {"steps": 4},
            "space": {"x": {"grid": [0.0, 1.0]}},
            "search": {"algorithm": "grid", "metric": "loss", "mode": "min", "num_samples": 1},
            "resources": {"cpu": 1}}


# --- helpers -----------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return out


def make_sweep(storage: Path, name: str = "s1", meta: dict[str, Any] | None = None,
               trials: list[tuple[str, str, dict[str, Any]]] | None = None) -> Path:
    """A sweep folder as a driver that died after Tune's first snapshot leaves it."""
    folder = storage / name
    (folder / "tune").mkdir(parents=True)
    (folder / SPEC).write_text(yaml.safe_dump({**SPEC_RAW, "name": name}, sort_keys=False))
    record = {"dynsweep_version": package_version(), "name": name, "family": "dummy", "created": "2025-01-01T00:00:00",
              "spec_sha256": sha256_file(folder / SPEC), "tracking_uri": "embedded", "datasets": "datasets",
              "metric": "loss", "mode": "min", "num_samples": 2, "state": "running"}
    record.update(meta or {})
    (folder / META).write_text(json.dumps(record))
    trials = trials if trials is not None else [("t_00000", "TERMINATED", {"loss": 0.5, "time_total_s": 1.0}),
                                                ("t_00001", "PENDING", {})]
    data = [[json.dumps({"trial_id": tid, "status": status, "config": {"x": float(i)}}),
             json.dumps({"last_result": last})] for i, (tid, status, last) in enumerate(trials)]
    (folder / "tune" / "experiment_state-2025-01-01_00-00-00.json").write_text(json.dumps({"trial_data": data}))
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusals
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit status 2 with a single ``error:`` line (argparse adds its usage above its line) and no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(errors) == 1, err
    if not err.startswith("usage:"):
        assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, tiny MLflow SQLite store (one experiment, no runs), from the session's store template."""
    from mlflow.tracking import MlflowClient

    from search.store_template import prepare_store

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    prepare_store(f"sqlite:///{path}")
    client = MlflowClient(f"sqlite:///{path}")
    client.create_experiment("e")
    return path


# --- 1. sweep.json -------------------------------------------------------------------------------
BAD_META: dict[str, bytes | None] = {
    "random bytes": bytes(random.Random(1).randrange(256) for _ in range(200)),
    "a list": b"[]",
    "a string": b'"x"',
    "state a number": b'{"state": 3}',
    "truncated": b'{"state": "running", "fam',
    "empty": b"",
    "mode not min/max": b'{"mode": "sideways"}',
    "a folder": None,
}


@pytest.mark.parametrize("case", list(BAD_META))
def test_bad_sweep_json_is_one_line_and_ls_lists_the_others(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                             case: str) -> None:
    storage = in_tmp / "runs"
    make_sweep(storage, "good")
    bad = make_sweep(storage, "bad")
    (bad / META).unlink()
    if BAD_META[case] is None:
        (bad / META).mkdir()
    else:
        (bad / META).write_bytes(BAD_META[case])
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["status", "bad", "--storage", str(storage)])
    assert_one_line_error(code, err, str(bad / META))
    code, out, err = run_cli(capsys, ["ls", str(storage)])
    assert code == 0 and "Traceback" not in err
    lines = out.splitlines()
    assert any(line.startswith("good ") and "died" in line for line in lines), out
    assert any(line.startswith("bad ") and "unreadable" in line for line in lines), out
    assert any(line.startswith(f"bad: unreadable: {bad / META}") for line in lines), out
    code, out, _ = run_cli(capsys, ["ls", str(storage), "--format", "json"])
    listed = {s["name"]: s for s in json.loads(out)}
    assert listed["bad"]["state"] == "unreadable" and str(bad / META) in listed["bad"]["error"]
    assert listed["good"]["state"] == "died" and listed["good"]["trials"] == {"finished": 1, "unfinished": 1}
    assert snapshot(in_tmp) == before


def test_ls_and_status_json_carry_the_text_facts(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = in_tmp / "runs"
    folder = make_sweep(storage, "s1")
    code, text, _ = run_cli(capsys, ["status", str(folder)])
    assert code == 0 and "best: loss=0.5 (trial t_00000)" in text and "resume with: dynsweep resume" in text
    code, out, _ = run_cli(capsys, ["status", str(folder), "--format", "json"])
    facts = json.loads(out)
    assert code == 0 and facts["best"] == 0.5 and facts["best_trial"] == "t_00000"
    assert facts["trials"] == {"finished": 1, "unfinished": 1} and facts["state"] == "died"
    assert facts["resume_with"] == f"dynsweep resume {folder}" and facts["driver"] is None
    code, out, _ = run_cli(capsys, ["ls", str(storage), "--format", "json"])
    [sweep] = json.loads(out)
    assert sweep["name"] == "s1" and sweep["best"] == 0.5 and sweep["resumable"] is True


def test_a_sweep_named_with_a_slash_is_listed(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = in_tmp / "runs"
    make_sweep(storage / "team", "b")
    make_sweep(storage, "plain")
    (storage / "odd\nname").mkdir()
    (storage / "train" / "twobody-1" / "checkpoint").mkdir(parents=True)  # `dynsweep train` folders: not sweeps
    code, out, err = run_cli(capsys, ["ls", str(storage)])
    assert code == 0 and not err
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == ["plain", "team/b"]


# --- 2. run map and journal ----------------------------------------------------------------------
@pytest.mark.parametrize("content", [b'{"__sweep__": "abc", "t_0', b"\x00\xff garbage", b"[1, 2]",
                                     b'{"t_00000": 7}'])
def test_resume_refuses_a_bad_run_map_before_anything_runs(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                           content: bytes) -> None:
    folder = make_sweep(in_tmp / "runs")
    (folder / RUN_MAP).write_bytes(content)
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["resume", str(folder)])
    assert_one_line_error(code, err, str(folder / RUN_MAP))
    assert snapshot(in_tmp) == before


def test_journal_skips_only_bad_lines_and_appends_on_a_fresh_line(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL
    start = {"e": "start", "trial": "a", "name": "a x=1", "config": {"x": 1}}
    result = {"e": "result", "trial": "a", "step": 1, "t": 1000, "metrics": {"loss": 0.5}, "tags": {}}
    path.write_bytes(json.dumps(start).encode() + b"\n" + b'{"e": "result", "trial": "a", "st' + b"\n"
                     + json.dumps(result).encode() + b"\n" + b"\xff\xfe\n" + b'{"e": "result", "tri')
    journal = Journal(tmp_path)
    trials = journal.read()
    assert trials["a"].name == "a x=1" and [r[0] for r in trials["a"].results] == [1]
    assert journal.bad_lines == [2, 4, 5] and journal.torn_lines() == [2, 4]
    # A driver killed mid-write left a torn last line: the next append cuts it off (half an event).
    journal.append({"e": "result", "trial": "a", "step": 2, "t": 2000, "metrics": {"loss": 0.25}})
    journal.append({"e": "end", "trial": "a", "status": "FINISHED", "tags": {}, "checkpoint": None})
    journal.close()
    again = Journal(tmp_path)
    trials = again.read()
    assert [r[0] for r in trials["a"].results] == [1, 2] and trials["a"].end["status"] == "FINISHED"
    assert again.bad_lines == [2, 4] and again.torn_lines() == [2, 4]     # no damage reported for the cut line


def test_resume_refuses_an_unreadable_journal_path(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_sweep(in_tmp / "runs")
    (folder / JOURNAL).mkdir()
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["resume", str(folder)])
    assert_one_line_error(code, err, str(folder / JOURNAL))
    assert snapshot(in_tmp) == before


# --- 3. mlflow.db ---------------------------------------------------------------------------------
def _foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("create table notes (x text)")
    con.commit()
    con.close()


BAD_STORES = {"random bytes": lambda p: p.write_bytes(os.urandom(3000)),
              "foreign SQLite": _foreign_sqlite,
              "empty": lambda p: p.write_bytes(b"")}
ANALYSIS = [["analyze", "{s}"], ["plot", "{s}", "curves"], ["cost", "{s}"], ["ui", "{s}", "--port", "0"],
            ["diff", "--sweep", "{s}"], ["diff", "a1", "b2", "--sweep", "{s}"], ["optuna", "{s}"],
            ["failures", "{s}"], ["importance", "{s}"]]


@pytest.mark.parametrize("store", list(BAD_STORES))
def test_analysis_commands_refuse_a_store_that_is_not_mlflow(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                             store: str) -> None:
    folder = make_sweep(in_tmp / "runs")
    db = folder / "mlflow.db"
    BAD_STORES[store](db)
    before = snapshot(in_tmp)
    for argv in ANALYSIS:
        code, _, err = run_cli(capsys, [a.format(s=folder) for a in argv])
        line = assert_one_line_error(code, err, f"{db}: not an MLflow store (")
        assert snapshot(in_tmp) == before, (argv, line)
    # resume checks the store the same way, before anything runs
    (folder / RUN_MAP).write_text(json.dumps({"__sweep__": "0" * 32}))
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["resume", str(folder)])
    assert_one_line_error(code, err, f"{db}: not an MLflow store (")
    assert snapshot(in_tmp) == before


def test_a_real_store_passes_and_a_missing_one_is_not_created(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                               mlflow_store: Path) -> None:
    from analysis.source import store_problem

    before = mlflow_store.read_bytes()
    assert store_problem(mlflow_store) is None
    assert mlflow_store.read_bytes() == before
    code, _, err = run_cli(capsys, ["analyze", "s9", "--tracking-uri", f"sqlite:///{mlflow_store}"])
    assert_one_line_error(code, err, "no sweep named 's9'")
    missing = in_tmp / "nothing.db"
    code, _, err = run_cli(capsys, ["analyze", "s9", "--tracking-uri", f"sqlite:///{missing}"])
    assert_one_line_error(code, err, f"{missing}: no MLflow store there")
    assert not missing.exists()
    # diff looking through the stores under --storage skips one that is not a store, and says so
    folder = make_sweep(in_tmp / "runs")
    (folder / "mlflow.db").write_bytes(b"junk")
    code, _, err = run_cli(capsys, ["diff", "a1", "b2", "--storage", str(in_tmp / "runs")])
    assert_one_line_error(code, err, "skipped, not MLflow stores", "not a SQLite database")


def test_a_store_whose_writer_was_killed_mid_transaction_is_recovered(tmp_path: Path,
                                                                      mlflow_store: Path) -> None:
    """A driver SIGKILLed while MLflow writes leaves a hot journal; a read-only open cannot roll it
    back ("attempt to write a readonly database"), so the check must not call the store broken."""
    import shutil
    import subprocess
    import sys

    from analysis.source import check_store, store_problem
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_store, db)
    killed_writer = ("import os, sqlite3, sys\n"
                     "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                     "con.execute('pragma cache_size=1'); con.execute('begin immediate')\n"
                     "for i in range(20000): con.execute('insert into tags values (?, ?, ?)', (f'k{i}', 'v' * 100, 'r'))\n"
                     "os._exit(9)\n")
    subprocess.run([sys.executable, "-c", killed_writer, str(db)], check=False, timeout=60)
    assert db.with_name("mlflow.db-journal").exists()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        con.execute("select name from sqlite_master").fetchall()
    assert store_problem(db) is None
    client = MlflowClient(check_store(f"sqlite:///{db}"))
    assert "e" in {e.name for e in client.search_experiments()}
    with sqlite3.connect(db) as con:                          # the killed transaction was rolled back
        assert con.execute("select count(*) from tags").fetchone()[0] == 0


# --- 4. train --resume ----------------------------------------------------------------------------
def _truncated_checkpoint(folder: Path) -> None:
    import torch

    torch.save({"step": 3, "w": torch.zeros(1000)}, folder / "checkpoint.pt")
    data = (folder / "checkpoint.pt").read_bytes()
    (folder / "checkpoint.pt").write_bytes(data[: len(data) // 2])


BAD_CHECKPOINTS = {"missing folder": None,
                   "empty folder": lambda f: None,
                   "garbage": lambda f: (f / "checkpoint.pt").write_bytes(os.urandom(500)),
                   "truncated": _truncated_checkpoint,
                   "a folder as checkpoint.pt": lambda f: (f / "checkpoint.pt").mkdir()}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_train_resume_from_a_bad_checkpoint_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                        case: str) -> None:
    ckpt = in_tmp / "ckpt"
    if BAD_CHECKPOINTS[case] is not None:
        ckpt.mkdir()
        BAD_CHECKPOINTS[case](ckpt)
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["train", "--family", "dummy", "--resume", str(ckpt),
                                    "--run-dir", str(in_tmp / "run")])
    assert_one_line_error(code, err, str(ckpt))
    assert snapshot(in_tmp) == before


# --- 5. option values -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, option", [
    (["train", "--family", "dummy", "--threads", "-3"], "--threads"),
    (["data", "twobody", "--orbits", "2", "--seed", "-1"], "--seed"),
    (["data", "twobody", "--orbits", "0"], "--orbits"),
    (["data", "twobody", "--orbits", "2", "--root", "{file}"], "--root"),
    (["data", "twobody", "--orbits", "2", "--root", "{file}/sub"], "--root"),
    (["data", "pendulum", "--sims", "2", "--dt", "0"], "--dt"),
    (["data", "pendulum", "--sims", "2", "--workers", "-2"], "--workers"),
    (["data", "worlds", "--env", "pendulum", "--seqs", "2", "--seed", "-1"], "--seed"),
    (["data", "worlds", "--env", "pendulum", "--seqs", "2", "--root", "{file}"], "--root"),
    (["data", "regression-demo", "--rows", "-5"], "--rows"),
    (["data", "regression-demo", "--outlier-fraction", "1.5"], "--outlier-fraction"),
    (["data", "regression-demo", "--root", "{file}"], "--root"),
    (["resume", "s1", "--retries", "-1"], "--retries"),
    (["extend", "s1", "--num-samples", "0"], "--num-samples"),
    (["plot", "s1", "curves", "--top", "0"], "--top"),
    (["ui", "s1", "--port", "70000"], "--port"),
    (["ls", "--format", "yaml"], "--format"),
])
def test_bad_option_values_are_refused_by_argparse(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                   argv: list[str], option: str) -> None:
    (in_tmp / "afile").write_text("x")
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, [a.format(file=in_tmp / "afile") for a in argv])
    assert_one_line_error(code, err, f"argument {option}")
    assert snapshot(in_tmp) == before


# --- 9. flags: one name per meaning, the same help, help everywhere -------------------------------------
MY_COMMANDS = ("data", "ls", "status", "resume", "extend", "train", "rerun", "analyze", "diff", "failures",
               "importance", "cost", "optuna", "plot", "ui")


def _subparsers(parser: Any) -> dict[str, Any]:
    import argparse

    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_flags_have_help_one_wording_and_sweep_replaces_store() -> None:
    import argparse

    from search.cli import build_parser
    from cliargs import STORAGE_HELP, TRACKING_URI_HELP

    parser = build_parser()
    commands = _subparsers(parser)
    parsers = [(name, commands[name]) for name in MY_COMMANDS if name != "data"]
    parsers += [(f"data {name}", p) for name, p in _subparsers(commands["data"]).items()]
    for name, p in parsers:
        for action in p._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"dynsweep {name} {action.option_strings or action.dest}: no help text"
            if "--storage" in action.option_strings:
                assert action.help == STORAGE_HELP, name
            if "--tracking-uri" in action.option_strings and name not in ("resume", "extend"):
                assert action.help == TRACKING_URI_HELP, name   # resume/extend: only the recorded store
    for argv in (["diff", "a1", "b2", "--store", "runs/x"], ["rerun", "a1", "--store", "runs/x"]):
        assert parser.parse_args(argv).sweep == "runs/x"
        assert parser.parse_args([a if a != "--store" else "--sweep" for a in argv]).sweep == "runs/x"
        assert "--store" not in commands[argv[0]].format_help()


# --- 6. progress ------------------------------------------------------------------------------------
def test_progress_prints_plain_lines_off_a_terminal_and_redraws_on_one() -> None:
    log = io.StringIO()
    show = Progress("data twobody", "orbits", stream=log, interactive=False, every_s=0.0)
    for done in (120, 400):
        show(done, 400)
    show(400, 400)  # after the end: nothing more
    lines = log.getvalue().splitlines()
    assert re.fullmatch(r"data twobody: 120/400 orbits \(30%\), \d+\.\d s, eta \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"data twobody: 400/400 orbits \(100%\), \d+\.\d s", lines[1]) and len(lines) == 2
    quiet = io.StringIO()
    show = Progress("data x", "rows", stream=quiet, interactive=False)  # every 5 s: only the final line here
    for done in range(1, 11):
        show(done, 10)
    assert quiet.getvalue().count("\n") == 1 and "10/10 rows (100%)" in quiet.getvalue()
    tty = io.StringIO()
    show = Progress("data x", "rows", stream=tty, interactive=True, every_s=0.0)
    show(1, 2)
    show(2, 2)
    assert tty.getvalue().startswith("\rdata x: 1/2 rows (50%)") and tty.getvalue().endswith("\n")


def test_every_data_command_reports_progress(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(in_tmp / "ds")
    for argv, label in ((["data", "twobody", "--orbits", "2", "--root", root], "data twobody"),
                        (["data", "worlds", "--env", "oscillator", "--seqs", "2", "--steps", "3", "--root", root],
                         "data worlds"),
                        (["data", "regression-demo", "--rows", "50", "--root", root], "data regression-demo"),
                        (["data", "pendulum", "--sims", "2", "--t-end", "0.1", "--workers", "1", "--root", root],
                         "data pendulum")):
        code, _, err = run_cli(capsys, argv)
        assert code == 0, err
        assert re.search(rf"^{label}.*: (\d+)/\1 \w+ \(100%\), \d+\.\d s$", err, re.M), err


# --- 10. flock ------------------------------------------------------------------------------------------
def test_a_filesystem_without_flock_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    fresh = SweepFolder(in_tmp / "runs" / "new")
    with pytest.raises(LockUnsupportedError, match="does not support file locks"):
        with fresh.driver_lock("launch"):
            pass
    assert not (in_tmp / "runs" / "new").exists()  # a refused driver leaves nothing behind
    folder = make_sweep(in_tmp / "runs")
    (folder / LOCK).write_text("")
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["status", str(folder)])
    assert_one_line_error(code, err, f"{folder}: the filesystem there does not support file locks")
    code, out, _ = run_cli(capsys, ["ls", str(in_tmp / "runs")])
    assert code == 0 and "unreadable" in out
    code, _, err = run_cli(capsys, ["resume", str(folder)])
    assert_one_line_error(code, err, "does not support file locks")
    assert snapshot(in_tmp) == before


# --- 11. versions -------------------------------------------------------------------------------------
def test_resume_compares_recorded_versions(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.provenance import versions

    now = versions()
    folder = make_sweep(in_tmp / "runs", meta={"versions": {**now, "ray": "1.0.0"}})
    (folder / "mlflow.db").write_bytes(b"")
    (folder / RUN_MAP).write_text(json.dumps({"__sweep__": "0" * 32}))
    before = snapshot(in_tmp)
    code, _, err = run_cli(capsys, ["resume", str(folder)])
    assert_one_line_error(code, err, "ray 1.0.0", f"ray {now['ray']}", "--force-versions")
    code, out, _ = run_cli(capsys, ["ls", str(in_tmp / "runs")])
    assert "no: " in out and "ray 1.0.0" in out
    code, _, err = run_cli(capsys, ["resume", str(folder), "--force-versions"])
    assert_one_line_error(code, err, "not an MLflow store")  # past the version check, stopped by the next
    assert snapshot(in_tmp) == before
    sf = SweepFolder(folder)
    assert check_versions(sf, {"versions": {**now, "torch": "0.0.1", "optuna": now["optuna"] + ".post1"}}) == \
        [f"optuna {now['optuna']}.post1 -> {now['optuna']}", f"torch 0.0.1 -> {now['torch']}"]
    with pytest.raises(DynsweepError, match="optuna 2.0"):
        check_versions(sf, {"versions": {"optuna": "2.0"}})
    assert check_versions(sf, {}) == []


# --- property: random documents as sweep.json, run map and journal ---------------------------------------
KEYS = ["state", "family", "metric", "mode", "num_samples", "tracking_uri", "created", "versions", "name",
        "dynsweep_version", "spec_sha256", "trial_data", "__sweep__", "e", "trial", "step", "t", "metrics",
        "status", "tags", "config", "result", "checkpoint", "x"]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 3, 10**20, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.choice([0.5, -2.5, 1e308, float("nan"), float("inf")])
    if kind == 4:
        return rng.choice(["", "running", "min", "max", "embedded", "FINISHED", "a/b", "x" * 50, "é\n\x00"])
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def documents(seed: int, n: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for i in range(n):
        if i % 10 == 9:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        elif i % 10 == 8:
            text = json.dumps(random_json(rng))
            yield text[: rng.randrange(len(text) + 1)].encode()  # truncated
        else:
            yield json.dumps(random_json(rng)).encode()


def test_random_documents_never_escape_as_anything_but_a_dynsweep_error(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.errors import AnalysisError
    from search.cli import build_parser

    parser = build_parser()  # once: building it takes most of a main() call

    def run(argv: list[str]) -> tuple[int, str, str]:
        """What main() does with a parsed command: a user error is exit status 2, anything else escapes."""
        args = parser.parse_args(argv)
        try:
            code = int(args.handler(args))
        except (DynsweepError, AnalysisError):
            code = 2
        out, err = capsys.readouterr()
        return code, out, err

    storage = tmp_path / "runs"
    folder = make_sweep(storage, "p")
    make_sweep(storage, "ok")
    sf = SweepFolder(folder)
    state = next((folder / "tune").glob("experiment_state-*.json"))
    checked = 0
    for i, doc in enumerate(documents(19, 300)):
        target = [META, RUN_MAP, JOURNAL, "state"][i % 4]
        path = state if target == "state" else folder / target
        original = path.read_bytes() if path.exists() else None
        path.write_bytes(doc if target != JOURNAL else doc + b"\n" + doc[: len(doc) // 2])
        for call in (sf.read_meta, sf.trials, sf.run_map, sf.driver, Journal(folder).read,
                     lambda: sweep_facts(sf, "p"), lambda: status_facts(sf)):
            try:
                call()
            except DynsweepError:
                pass
        for argv in (["ls", str(storage)], ["ls", str(storage), "--format", "json"], ["status", str(folder)]):
            code, out, err = run_cli(capsys, argv) if i % 50 == 0 else run(argv)
            assert code in (0, 2) and "Traceback" not in err, (argv, doc)
            if argv[0] == "ls":
                assert code == 0 and "ok" in out, doc
        checked += 1
        if original is None:
            path.unlink()
        else:
            path.write_bytes(original)
    assert checked == 300


def test_tune_state_cut_short_is_put_back_from_its_last_whole_copy(tmp_path: Path) -> None:
    """Tune rewrites its state files in place: a kill or a full disk can cut one short. The last
    whole set (kept while the sweep ran) is put back on resume; nothing else is touched."""
    import pickle

    folder = SweepFolder(tmp_path / "s")
    tune_dir = folder.tune_dir
    tune_dir.mkdir(parents=True)
    state = tune_dir / "experiment_state-2026-01-01_00-00-00.json"
    searcher = tune_dir / "searcher-state-2026-01-01_00-00-00.pkl"
    state.write_text(json.dumps({"trial_data": [], "runner_data": {}}))
    searcher.write_bytes(pickle.dumps({"trials": 3}))
    assert folder.repair_experiment_state() is None                      # whole: nothing to do
    assert folder.save_tune_state()
    good = {p.name: p.read_bytes() for p in (state, searcher)}
    searcher.write_bytes(b"")                                            # cut short (an empty copy)
    assert not folder.save_tune_state()                                  # a broken set is never kept
    note = folder.repair_experiment_state()
    assert note is not None and "searcher-state-2026-01-01_00-00-00.pkl" in note
    assert {p.name: p.read_bytes() for p in (state, searcher)} == good
    state.write_text('{"trial_data": [')                                 # the JSON cut short
    assert folder.repair_experiment_state() is not None and json.loads(state.read_text())["trial_data"] == []
    broken = sorted((tune_dir / "backup").glob("broken-*/*"))
    assert broken                                                        # the broken files are kept aside


@pytest.mark.parametrize("name", ["search_gen_state-2026-01-01_00-00-00.json",
                                  "basic-variant-state-2026-01-01_00-00-00.json"])
def test_searcher_state_pickled_under_a_json_name_is_kept_and_put_back(tmp_path: Path, name: str) -> None:
    """Tune's searchers save pickles under ``*.json`` names (the grid's ``basic-variant-state``,
    Optuna's ``search_gen_state``): they are recognised as whole, kept, and put back when a full
    disk empties them (``Tuner.restore`` then failed with "EOFError: Ran out of input")."""
    import pickle

    folder = SweepFolder(tmp_path / "s")
    folder.tune_dir.mkdir(parents=True)
    (folder.tune_dir / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    searcher = folder.tune_dir / name
    searcher.write_bytes(pickle.dumps({"counter": 6, "state": list(range(50))}, protocol=5))
    assert folder.save_tune_state()                                      # a pickle named .json is whole
    good = searcher.read_bytes()
    for cut in (b"", good[:1], good[: len(good) // 2], good[:-1]):
        searcher.write_bytes(cut)
        assert not folder.save_tune_state()
        note = folder.repair_experiment_state()
        assert note is not None and name in note
        assert pickle.loads(searcher.read_bytes()) == {"counter": 6, "state": list(range(50))}
