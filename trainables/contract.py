"""The family contract, checked: what ``docs/families.md`` promises, as code.

:func:`check_record` looks at a :class:`~trainables.registry.Family` record without training
(every hook importable, the config class a ``FamilyConfig`` that declares its metrics, the
smoke config valid, artefact formats well formed); :func:`check_run` trains the smoke config
with a :class:`~trainables.common.reporter.LocalReporter` and checks what a sweep relies on:

- every name in ``metric_names()`` is reported, and only declared tags;
- the same config twice gives the same final metrics (clock metrics excepted);
- a run interrupted after its first checkpoint and resumed from it ends with the same final
  metrics as an uninterrupted one;
- an unknown config key and a wrongly typed value each give a one-line ``ConfigError`` naming
  the key;
- every declared artefact exists and carries its format id and version in its footer;
- the last checkpoint holds the run's full config;
- a family's ``derived_params`` are numbers whose names are not config keys;
- a family with an ``evaluate`` hook reproduces, from that checkpoint and config, exactly the last
  report's values of every metric the hook returns, and writes every declared artefact;
- a family with ``exports_model`` wrote ``model.pt`` + ``model.json`` whose TorchScript reproduces the
  recorded example outputs;
- a family with ``replicates`` trains its smoke config with ``replicates: 2``: every declared name
  reported, each mean the mean of its ``_r<i>`` values, resume and ``evaluate`` reproducing it.

``python -m trainables.contract NAME --workdir DIR`` runs both in a fresh interpreter and also
checks that the family did not import Ray or MLflow; it prints one problem a line and exits 1
when there is any. ``tests/test_family_contract.py`` runs it for every registered family.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from trainables.common.errors import ConfigError
from trainables.common.reporter import LocalReporter
from trainables.registry import FAMILIES, GENERIC_PLOTS, Family, load


class _Interrupted(Exception):
    """Raised by :class:`_StopAfterCheckpoint` to cut a run short, as a killed trial would be."""


class _StopAfterCheckpoint(LocalReporter):
    """A local reporter that stops the run right after its first checkpoint."""

    def report(self, step: int, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        super().report(step, metrics, checkpoint_dir)
        if checkpoint_dir is not None:
            raise _Interrupted(step)


def check_record(name: str, family: Family) -> list[str]:
    """Problems with the record itself (no training); empty when it is complete."""
    from trainables.common.artifacts import ArtifactFormat
    from trainables.common.config import FamilyConfig

    problems = []
    for hook, path in family.hooks().items():
        try:
            load(path)
        except Exception as err:  # noqa: BLE001 - any import failure is a broken hook
            problems.append(f"{name}: hook {hook} = {path!r} cannot be loaded: {type(err).__name__}: {err}")
    if problems:
        return problems
    config = load(family.config)
    if not (isinstance(config, type) and issubclass(config, FamilyConfig)):
        return [f"{name}: hook config must be a FamilyConfig subclass, got {config!r}"]
    if config.metric_names is FamilyConfig.metric_names:
        problems.append(f"{name}: hook metric_names: {config.__name__} does not declare metric_names()")
    if not family.smoke:
        problems.append(f"{name}: hook smoke: the record has no smoke config (a config that trains in seconds)")
    try:
        config.from_dict(family.smoke)
    except ConfigError as err:
        problems.append(f"{name}: hook smoke: the smoke config is refused: {err}")
    if not callable(load(family.run)):
        problems.append(f"{name}: hook run = {family.run!r} is not callable")
    formats = load(family.artifacts) if family.artifacts else ()
    ids = [f.id for f in formats if isinstance(f, ArtifactFormat)]
    if len(ids) != len(tuple(formats)):
        problems.append(f"{name}: hook artifacts: every entry must be an ArtifactFormat")
    if len(set(ids)) != len(ids) or any(not i.startswith(f"{name}.") for i in ids):
        problems.append(f"{name}: hook artifacts: format ids must be unique and start with '{name}.' ({ids})")
    clash = set(family.plot_kinds) & set(GENERIC_PLOTS)
    if clash:
        problems.append(f"{name}: hook plot_kinds: {sorted(clash)} are generic kinds, not the family's own")
    return problems


def _comparable(metrics: dict[str, Any], clock: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in clock and k != "step"}


def _same(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (NaN equals NaN)."""
    keys = sorted(set(a) | set(b))
    def eq(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return x == y
    return [k for k in keys if not eq(a.get(k), b.get(k))]


def _config_errors(name: str, family: Family, base: dict[str, Any]) -> list[str]:
    """An unknown key and a wrongly typed value must each be a one-line ConfigError naming the key."""
    config = load(family.config)
    problems = []
    for bad, key in (({**base, "no_such_key": 1}, "no_such_key"), *_wrong_types(config, base)):
        try:
            config.from_dict(bad)
        except ConfigError as err:
            if key not in str(err) or "\n" in str(err):
                problems.append(f"{name}: config error for {key!r} is not one line naming the key: {err}")
        else:
            problems.append(f"{name}: config accepted {key}={bad[key]!r}")
    return problems


def _wrong_types(config: type, base: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """One config with a number field set to a word (the first int or float field)."""
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING and type(f.default) in (int, float):
            return [({**base, f.name: "not-a-number"}, f.name)]
    return []


def check_run(name: str, family: Family, workdir: Path) -> list[str]:
    """Train the smoke config (twice, and once interrupted then resumed) under ``workdir``."""
    from trainables.common.artifacts import read_format

    config = load(family.config)
    run = load(family.run)
    base = dict(family.smoke)
    if "datasets_root" in {f.name for f in dataclasses.fields(config)}:
        base["datasets_root"] = str(workdir / "datasets")
    problems = _config_errors(name, family, base)
    first = LocalReporter(workdir / "first", progress=False)
    final = run(dict(base), first)
    reported = set().union(*(row.keys() for row in first.history)) if first.history else set()
    missing = sorted(config.from_dict(base).metric_names() - reported)
    if missing:
        problems.append(f"{name}: metric_names() declares metrics never reported: {', '.join(missing)}")
    undeclared = sorted(set(first.tag_values) - set(family.tags))
    if undeclared:
        problems.append(f"{name}: tags reported but not declared in the record's tags: {', '.join(undeclared)}")
    for fmt in (load(family.artifacts) if family.artifacts else ()):
        path = first.artifact_dir() / fmt.file
        if not path.is_file():
            problems.append(f"{name}: declared artefact {fmt.file} ({fmt.id}) was not written")
        elif read_format(path) != (fmt.id, fmt.version):
            problems.append(f"{name}: {fmt.file} carries format {read_format(path)}, not {(fmt.id, fmt.version)}")
    if family.exports_model:
        from trainables.common.export import check_export

        problems += [f"{name}: exports_model: {p}" for p in check_export(first.artifact_dir())]
    from trainables.common.checkpoint import saved_config

    try:
        if saved_config(first.checkpoint_path) != config.from_dict(base).to_dict():
            problems.append(f"{name}: the checkpoint's config differs from the run's full config")
    except (KeyError, FileNotFoundError):
        problems.append(f"{name}: the checkpoint holds no config (use checkpoint.save_training)")
    if family.derived_params:
        derived = load(family.derived_params)(config.from_dict(base).to_dict())
        fields = {f.name for f in dataclasses.fields(config)}
        bad = sorted(k for k, v in derived.items() if k in fields or not isinstance(v, (int, float)))
        if bad or not derived:
            problems.append(f"{name}: hook derived_params: names clash with config keys or values are not numbers: "
                            f"{', '.join(bad) or 'nothing returned'}")
    if family.evaluate:
        problems += _check_evaluate(name, family, first.checkpoint_path, final, workdir / "evaluated")
    second = run(dict(base), LocalReporter(workdir / "second", progress=False))
    clock = family.clock_metrics
    diff = _same(_comparable(final, clock), _comparable(second, clock))
    if diff:
        problems.append(f"{name}: the same config twice gave different final metrics: {', '.join(diff[:8])}")
    cut = _StopAfterCheckpoint(workdir / "resumed", progress=False)
    try:
        run(dict(base), cut)
    except _Interrupted:
        pass
    else:
        problems.append(f"{name}: the smoke run reported no checkpoint before its last report (cannot test resume)")
        return problems
    resumed = run(dict(base), LocalReporter(workdir / "resumed-2", resume_from=cut.checkpoint_path, progress=False))
    diff = _same(_comparable(final, clock), _comparable(resumed, clock))
    if diff:
        problems.append(f"{name}: a run resumed from its checkpoint ended with other final metrics than an "
                        f"uninterrupted one: {', '.join(diff[:8])}")
    if family.replicates:
        problems += _check_replicates(name, family, {**base, "replicates": 2}, workdir / "replicates")
    return problems


def _check_replicates(name: str, family: Family, base: dict[str, Any], workdir: Path) -> list[str]:
    """A family that trains seed replicates: the smoke config with ``replicates: 2`` reports every
    declared name, each mean is the mean of its per-replicate values, a resumed run and the
    ``evaluate`` hook reproduce the final metrics."""
    import statistics

    config, run, clock = load(family.config), load(family.run), family.clock_metrics
    first = LocalReporter(workdir / "first", progress=False)
    final = run(dict(base), first)
    reported = set().union(*(row.keys() for row in first.history)) if first.history else set()
    problems = [f"{name}: replicates: declared but never reported: {m}"
                for m in sorted(config.from_dict(base).metric_names() - reported)[:8]]
    for key in (k.removesuffix("_r0") for k in final if k.endswith("_r0")):
        values = [final[f"{key}_r{i}"] for i in range(2) if not math.isnan(final[f"{key}_r{i}"])]
        if values and not math.isclose(final[key], statistics.fmean(values), rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{name}: replicates: {key}={final[key]!r} is not the mean of its replicates {values}")
    cut = _StopAfterCheckpoint(workdir / "resumed", progress=False)
    try:
        run(dict(base), cut)
    except _Interrupted:
        resumed = run(dict(base), LocalReporter(workdir / "resumed-2", resume_from=cut.checkpoint_path,
                                                progress=False))
        diff = _same(_comparable(final, clock), _comparable(resumed, clock))
        if diff:
            problems.append(f"{name}: replicates: a resumed run ended with other final metrics: {', '.join(diff[:8])}")
    if family.evaluate:
        problems += [p.replace(f"{name}: ", f"{name}: replicates: ", 1)
                     for p in _check_evaluate(name, family, first.checkpoint_path, final, workdir / "evaluated")]
    return problems


def _check_evaluate(name: str, family: Family, folder: Path, final: dict[str, Any], out: Path) -> list[str]:
    """``evaluate`` on the run's final checkpoint and its saved config must return exactly the final
    report's values of the metrics it returns (clock metrics aside), and write every declared artefact."""
    from trainables.common.artifacts import read_format
    from trainables.common.checkpoint import saved_config

    out.mkdir(parents=True, exist_ok=True)
    metrics = load(family.evaluate)(folder, saved_config(folder), [], out)
    problems = []
    if not metrics:
        problems.append(f"{name}: hook evaluate returned no metrics")
    missing = sorted(k for k in metrics if k not in final)
    if missing:
        problems.append(f"{name}: hook evaluate returned metrics the last report lacks: {', '.join(missing[:8])}")
    mine = _comparable({k: v for k, v in metrics.items() if k in final}, family.clock_metrics)
    diff = _same(mine, {k: final[k] for k in mine})
    if diff:
        problems.append(f"{name}: hook evaluate on the final checkpoint does not reproduce the last report: "
                        + ", ".join(f"{k} {metrics[k]!r} vs {final[k]!r}" for k in diff[:4]))
    for fmt in (load(family.artifacts) if family.artifacts else ()):
        path = out / fmt.file
        if not path.is_file() or read_format(path) != (fmt.id, fmt.version):
            problems.append(f"{name}: hook evaluate did not write the declared artefact {fmt.file} ({fmt.id})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check one registered family against the family contract.")
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("--workdir", type=Path, required=True, help="scratch folder (datasets, runs)")
    args = ap.parse_args(argv)
    family = FAMILIES[args.family]
    problems = check_record(args.family, family)
    if not problems:
        problems = check_run(args.family, family, args.workdir)
    leaked = [m for m in ("ray", "mlflow") if m in sys.modules]
    if leaked:
        problems.append(f"{args.family}: the family imported {' and '.join(leaked)} (families must not)")
    print(json.dumps(problems, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
