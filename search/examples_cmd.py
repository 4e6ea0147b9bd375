"""The search spaces shipped with dynsweep (``search_spaces/``): ``dynsweep examples`` lists
them, and a spec argument that is not a file but a shipped name (``quickstart``,
``twobody_asha.yaml``) means that file, also after a plain ``pip install``."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
from pathlib import Path

from trainables.common.errors import ConfigError, DynsweepError

_SUFFIXES = (".yaml", ".yml")


def shipped_dir() -> Path | None:
    """The folder of the shipped search spaces: the installed ``search_spaces`` package, else the
    checkout's ``search_spaces/`` beside ``search/``."""
    try:
        found = importlib.util.find_spec("search_spaces")
    except (ImportError, ValueError):
        found = None
    for folder in ([Path(p) for p in found.submodule_search_locations or []] if found else []) + \
            [Path(__file__).resolve().parents[1] / "search_spaces"]:
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return None


def shipped() -> dict[str, Path]:
    """Shipped search space name -> its file, by name."""
    folder = shipped_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder else {}


def resolve_spec(arg: str | os.PathLike[str]) -> Path:
    """The file a spec argument means: an existing path as given, else the shipped search space
    of that name (with or without ``.yaml``). Errors say what exists."""
    path = Path(arg)
    if path.exists() or path.is_symlink():
        return path
    text = str(arg)
    name = text[: -len(s)] if (s := next((s for s in _SUFFIXES if text.endswith(s)), "")) else text
    if os.sep in text or (os.altsep and os.altsep in text) or not name:
        raise ConfigError(f"{arg}: no such file")
    spaces = shipped()
    if name in spaces:
        return spaces[name]
    known = ", ".join(spaces) or "none installed"
    raise ConfigError(f"{arg}: no such file, and not the name of a shipped search space; shipped: {known} "
                      "(`dynsweep examples` describes them)")


def describe(path: Path) -> tuple[str, str]:
    """``(family, one-line description)`` of a search space file: the description is its
    ``# description:`` comment, else the first sentence of its leading comment."""
    from .yaml_io import load_file

    text_lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    comment: list[str] = []
    description = ""
    for line in text_lines:
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.lower().startswith("description:"):
            description = body.split(":", 1)[1].strip()
            break
        comment.append(body)
    if not description:
        joined = " ".join(comment)
        m = re.match(r"(.+?[.:])(\s|$)", joined)
        description = (m.group(1) if m else joined).rstrip(":")
    if len(description) > 110:
        description = description[:107].rstrip() + "..."
    try:
        data = load_file(path)
        family = str(data.get("family", "?")) if isinstance(data, dict) else "?"
    except DynsweepError:
        family = "?"
    return family, description


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("The search spaces shipped with dynsweep. `dynsweep launch NAME` and `dynsweep validate NAME` "
                     "accept these names in place of a file; copy one to start your own.")
    p.add_argument("--paths", action="store_true", help="also print each file's path")


def run(args: argparse.Namespace) -> int:
    spaces = shipped()
    if not spaces:
        raise ConfigError("no shipped search spaces found (the search_spaces package is not installed)")
    rows = [(name, *describe(path), str(path)) for name, path in spaces.items()]
    wn = max(len(r[0]) for r in rows)
    wf = max(len(r[1]) for r in rows)
    for name, family, description, where in rows:
        print(f"{name:<{wn}}  {family:<{wf}}  {description}" + (f"  ({where})" if getattr(args, "paths", False) else ""))
    print("\nrun one: dynsweep launch NAME  (check it first: dynsweep validate NAME; override keys with --set)")
    return 0
