"""Printing and saving analysis tables: ``table`` (aligned text), ``markdown``, ``csv``, ``json``."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any

import polars as pl

FORMATS = ("table", "markdown", "csv", "json")


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table", help="how to print (default: table)")
    p.add_argument("--out", type=Path, default=None, help="also write the result into this folder")


def cell(value: Any, best: bool = False) -> str:
    """A value as printed in a table: floats (also MLflow's string params) to 4 significant digits."""
    if isinstance(value, str) and len(value) > 8:
        try:
            value = float(value)
        except ValueError:
            pass
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
    else:
        text = str(value)
    return f"{text} *" if best else text


def render(df: pl.DataFrame, fmt: str, best: dict[str, Any] | None = None) -> str:
    """``df`` as text; in ``table``/``markdown`` the cells equal to ``best[column]`` get a ``*``."""
    best = best or {}
    if fmt == "csv":
        return df.write_csv()
    if fmt == "json":
        return json.dumps({"rows": df.to_dicts(), "best": best}, indent=1, default=str) + "\n"
    cols = df.columns
    body = [[cell(v, c in best and v is not None and v == best[c]) for c, v in zip(cols, row)] for row in df.iter_rows()]
    if fmt == "markdown":
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines) + "\n"
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(cols)]
    fit = _columns_that_fit(widths, shutil.get_terminal_size((160, 24)).columns)
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols[:fit], widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r[:fit], widths)) for r in body]
    if fit < len(cols):
        lines.append(f"({len(cols) - fit} more columns: {', '.join(cols[fit:])}; choose with --columns, "
                     "or --format csv|json for all)")
    return "\n".join(lines) + "\n"


def _columns_that_fit(widths: list[int], width: int) -> int:
    """How many leading columns fit in ``width`` characters (at least two: run and trial)."""
    used, n = 0, 0
    for w in widths:
        if n >= 2 and used + w > width:
            break
        used, n = used + w + 2, n + 1
    return n


EXTENSIONS = {"table": "txt", "markdown": "md", "csv": "csv", "json": "json"}


def emit(df: pl.DataFrame, args: argparse.Namespace, name: str, best: dict[str, Any] | None = None,
         title: str = "") -> None:
    """Print ``df`` in the chosen format and, with ``--out``, write it there as ``<name>.<ext>``."""
    text = render(df, args.format, best)
    if title and args.format in ("table", "markdown"):
        print(title)
    print(text, end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{name}.{EXTENSIONS[args.format]}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        print(f"written: {path}")
