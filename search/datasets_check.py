"""Before a sweep starts: a dataset it names that exists but cannot be read is refused.

Missing datasets are generated on first use (by the trials), so only datasets that exist are
checked, and only their Parquet footers are read (a few KB each). A config names its datasets
by name under the datasets root (``datasets_root``, else ``$DYNSWEEP_DATASETS``, else
``./datasets``) or by path: every string value of the resolved config and every string value a
swept parameter can take is looked up as ``<root>/<name>`` (a dataset folder: each ``*.parquet``
in it), ``<root>/<name>.parquet`` and, when it looks like a path to a Parquet file, as given.
Datasets a family derives itself (a default dataset named after the config's parameters, an
``auto`` validation set) are found through the family's ``dataset_paths`` hook, which computes
their paths from the resolved config. Nothing is written or generated here.
"""

from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from trainables.common.errors import ConfigError, DataError, DynsweepError

MAX_FILES_PER_FOLDER = 64


def strings_in(value: Any, limit: int = 1_000_000) -> Iterator[str]:
    """Every string in ``value`` (nested lists, tuples and mappings' values), iteratively."""
    stack = [value]
    seen = 0
    while stack and seen < limit:
        item = stack.pop()
        seen += 1
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def datasets_root(config: dict[str, Any]) -> Path:
    root = config.get("datasets_root")
    return Path(root if isinstance(root, str) and root else os.environ.get("DYNSWEEP_DATASETS", "datasets"))


def candidate_files(texts: Iterable[str], root: Path) -> Iterator[tuple[str, Path]]:
    """``(name, Parquet file)`` for every existing dataset file a text may name."""
    done: set[str] = set()
    for text in texts:
        if text in done or not text or len(text) > 1024 or "\0" in text or "\n" in text:
            continue
        done.add(text)
        places = [root / text, root / f"{text}.parquet"]
        if text.endswith(".parquet") or os.sep in text:
            places.append(Path(text))
        for place in places:
            try:
                if place.is_file() and place.suffix == ".parquet":
                    yield text, place
                elif place.is_dir() and place != root:
                    files = sorted(p for p in place.glob("*.parquet") if not p.name.startswith("."))
                    for file in files[:MAX_FILES_PER_FOLDER]:
                        yield text, file
            except OSError:  # a name too long for the file system, a folder we may not list: not a dataset
                continue


def derived_files(family: str, config: dict[str, Any] | None) -> Iterator[tuple[str, Path]]:
    """``(name, Parquet file)`` for every existing file or folder the family's ``dataset_paths``
    hook says a trial with ``config`` reads; nothing when the family has no hook or the config
    cannot be resolved."""
    if config is None:
        return
    from trainables.registry import family_dataset_paths

    try:
        places = family_dataset_paths(family, config)
    except DynsweepError:  # a config the family refuses (e.g. ``auto`` beside a non-standard name): the trial says so
        return
    for place in places:
        try:
            if place.is_file():
                yield place.stem, place
            elif place.is_dir():
                files = sorted(p for p in place.glob("*.parquet") if not p.name.startswith("."))
                for file in files[:MAX_FILES_PER_FOLDER]:
                    yield place.name, file
        except OSError:  # a folder we may not list: left for the trial to report
            continue


def check_datasets(path: str, family: str, texts: Iterable[str], root: Path,
                   config: dict[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` naming the file and the fix if a dataset the config names (in
    ``texts``) or the family derives from the resolved ``config`` exists but its Parquet footer
    cannot be read (truncated, overwritten, not Parquet)."""
    checked: set[Path] = set()
    for name, file in itertools.chain(candidate_files(texts, root), derived_files(family, config)):
        if file in checked:
            continue
        checked.add(file)
        from trainables.common.parquet_store import read_footer

        try:
            read_footer(file)
        except DataError as err:
            reason = " ".join(str(err).split())
            raise ConfigError(f"{path}: dataset {name!r}: {reason}; {_fix(family, file, root)}") from None
        except PermissionError:
            raise ConfigError(f"{path}: dataset {name!r}: {file} cannot be read (permission denied)") from None


def _fix(family: str, file: Path, root: Path) -> str:
    """How to repair a dataset: regenerate it with the family's data command, or delete it."""
    try:
        rel = file.relative_to(root)
        target = root / rel.parts[0]
    except ValueError:
        target = file
    commands = ""
    try:
        from trainables.registry import entry

        module = entry(family).data_cli
        if module:
            first = next(iter(importlib.import_module(module).COMMANDS), "")
            commands = f"`dynsweep data {first} ... --overwrite`" if first else ""
    except Exception:  # noqa: BLE001 - only the hint is lost
        commands = ""
    regenerate = f"regenerate it with {commands}" if commands else "regenerate it (`dynsweep data --help`)"
    return (f"{regenerate}, or delete {target} (a missing standard dataset is generated again on first use)")
