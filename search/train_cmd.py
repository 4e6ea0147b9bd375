"""``dynsweep train``: one trial of a family, locally, without Ray, with progress (a bar on a terminal, a line every 30 s in a log)."""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path
from typing import Any

import yaml

from cliargs import existing_or_creatable_dir, positive_int
from trainables.common.errors import ConfigError
from trainables.registry import check_replicates_supported, family_config, family_run

from .overrides import apply_overrides


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", type=Path,
                   help="YAML: family config keys at top level (plus `family:`), or a sweep file (its base config)")
    p.add_argument("--family", default=None, help="family to train when no YAML is given (e.g. twobody)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (dotted keys, YAML values); repeatable")
    p.add_argument("--run-dir", type=existing_or_creatable_dir, default=None,
                   help="where checkpoints, metrics and artefacts go (default runs/train/<family>-<time>)")
    p.add_argument("--resume", type=Path, default=None, help="a checkpoint folder to continue from")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--replicates", type=positive_int, default=None, metavar="N",
                   help="train seeds seed..seed+N-1 as one vectorised model (families that support it, e.g. "
                        "twobody); reports their mean, std, min, max and each one")


def load_config(path: Path | None, family: str | None, overrides: list[str]) -> tuple[str, dict[str, Any]]:
    """The family name and its config mapping, with overrides applied (not yet validated)."""
    data: dict[str, Any] = {}
    if path is not None:
        from .yaml_io import load_file

        loaded = load_file(path, "config YAML") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = dict(loaded.get("base", {})) if "base" in loaded else {k: v for k, v in loaded.items() if k != "family"}
        if "base" in loaded and loaded.get("replicates") is not None:  # a sweep file's seeds per trial
            data["replicates"] = loaded["replicates"]
        family = family or loaded.get("family")
    if family is None:
        raise ConfigError("say which family to train: a YAML with `family:` or --family NAME")
    return family, apply_overrides(data, overrides)


def run(args: argparse.Namespace) -> int:
    from trainables.common.reporter import LocalReporter

    family, data = load_config(args.config, args.family, args.overrides)
    if args.replicates is not None:
        data = {**data, "replicates": args.replicates}
    if isinstance(data.get("replicates"), int):  # a wrong type is the config's to refuse
        check_replicates_supported(family, data["replicates"])
    cfg = family_config(family).from_dict(data, where=str(args.config or "config"))
    if args.resume is not None:
        check_resume(args.resume)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_dir = args.run_dir or Path("runs") / "train" / f"{family}-{time.strftime('%Y%m%d-%H%M%S')}"
    reporter = LocalReporter(run_dir, resume_from=args.resume)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"family": family, **cfg.to_dict()}, sort_keys=False))
    print(f"training {family} -> {run_dir}")
    start = time.perf_counter()
    final = family_run(family)(cfg, reporter)
    print(f"done in {time.perf_counter() - start:.1f} s; checkpoint {reporter.checkpoint_path}")
    print(format_metrics(final))
    return 0


def check_resume(folder: Path) -> None:
    """``--resume``: a checkpoint folder whose ``checkpoint.pt`` (when it has one) loads; checked
    before the run folder is made, so a refusal writes nothing.

    Raises:
        ConfigError / CheckpointError: naming the path and what is wrong.
    """
    from trainables.common.checkpoint import CHECKPOINT_FILE, load

    if not folder.exists():
        raise ConfigError(f"--resume {folder}: no such checkpoint folder")
    if not folder.is_dir():
        raise ConfigError(f"--resume {folder}: a file, not a checkpoint folder (give the folder that holds "
                          f"{CHECKPOINT_FILE}, e.g. <run dir>/checkpoint)")
    if (folder / CHECKPOINT_FILE).exists():
        load(folder)
        return
    try:
        empty = not any(folder.iterdir())
    except OSError as err:
        raise ConfigError(f"--resume {folder}: cannot be read ({err.strerror or err})") from None
    if empty:
        raise ConfigError(f"--resume {folder}: an empty folder, not a checkpoint (no {CHECKPOINT_FILE})")


def format_metrics(metrics: dict[str, Any]) -> str:
    """The training figures, then the ``test/`` metrics as a table: one row per metric, one column
    per test set (``test/<set>/<metric>``; a ``test/<metric>`` goes in the column ``test``)."""
    spread = {k for k in metrics if f"{k}_std" in metrics}  # a replicated run: one line per metric
    derived = {f"{k}_{s}" for k in spread for s in ("std", "min", "max")} | {
        k for k in metrics if re.fullmatch(r"(.+)_r\d+", k) and re.fullmatch(r"(.+)_r\d+", k).group(1) in spread}
    lines = [_line(k, v, metrics) if k in spread else f"{k:>14}: {v:.5g}" if isinstance(v, (int, float))
             else f"{k:>14}: {v}" for k, v in metrics.items() if not k.startswith(("test/", "tag/")) and k not in derived]
    table: dict[str, dict[str, float]] = {}  # metric -> set -> value, in reporting order
    sets: list[str] = []
    for key, value in metrics.items():
        if key.startswith("test/"):
            parts = key.split("/", 2)
            name, metric = (parts[1], parts[2]) if len(parts) == 3 else ("test", parts[1])
            sets += [] if name in sets else [name]
            table.setdefault(metric, {})[name] = value
    if table:
        width = max(len(m) for m in table)
        lines += ["", f"{'metric':<{width}}  " + "  ".join(f"{s:>24}" for s in sets)]
        for metric, row in table.items():
            lines.append(f"{metric:<{width}}  " + "  ".join(f"{_fmt(row.get(s, math.nan)):>24}" for s in sets))
    return "\n".join(lines)


def _line(key: str, mean: float, metrics: dict[str, Any]) -> str:
    """``key: mean ± std [min, max] (r0 r1 ...)`` for a metric of seed replicates."""
    reps = [metrics[f"{key}_r{i}"] for i in range(len(metrics)) if f"{key}_r{i}" in metrics]
    return (f"{key:>14}: {mean:.5g} ± {metrics[f'{key}_std']:.3g} [{metrics.get(f'{key}_min', math.nan):.5g}, "
            f"{metrics.get(f'{key}_max', math.nan):.5g}] (replicates: {' '.join(_fmt(v) for v in reps)})")


def _fmt(v: float) -> str:
    return "nan" if v != v else f"{v:.4g}"
