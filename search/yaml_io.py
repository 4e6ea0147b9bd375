"""The one place sweep YAML is read: spec files and ``--set`` values.

Plain PyYAML (YAML 1.1) is not enough for a file a user hands in. Here:

- numbers are read the way people write them: ``1e-6``, ``1E6``, ``5e-3``, ``.5``, ``1.0e-4``,
  ``1_000`` (YAML 1.2 style floats; PyYAML reads ``1e-6`` as a *string*); dates and ``=`` stay
  strings;
- a file must be UTF-8 text (not a PNG, a gzip or a Parquet file), at most :data:`MAX_BYTES`;
- every mapping key is a string (``1: x``, ``null: 3``, ``[a]: b`` are refused naming the key
  path), and a key given twice is refused;
- nesting is at most :data:`MAX_DEPTH` levels, a list or mapping holds at most :data:`MAX_ITEMS`
  entries, and aliases may expand the document to at most :data:`MAX_NODES` values ("billion
  laughs"); a recursive alias is refused.

These are checked on the parser's event stream (iterative, memory-light) before any Python
object is built, so a hostile file fails fast in one line. Every error is a
:class:`~trainables.common.errors.ConfigError` naming the source (file or ``--set``), the key
path and the line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.error import MarkedYAMLError

from trainables.common.errors import ConfigError

MAX_BYTES = 64 * 2 ** 20
"""Largest sweep YAML read (a sweep YAML holds a search space, not data)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings."""
MAX_ITEMS = 100_000
"""Most entries of one list or mapping (e.g. the values of a ``choice``)."""
MAX_NODES = 2_000_000
"""Most values in a document, aliases counted each time they are used."""

_Base: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_DROPPED = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", _FLOAT)

FLOAT_RE = re.compile(r"""^(?:
     [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
"""Floats: YAML 1.2 (exponent without a dot or a sign) plus YAML 1.1's underscores and base 60."""


class SpecLoader(_Base):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (libyaml when present) with :data:`FLOAT_RE` floats and no dates."""


SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()}
SpecLoader.add_implicit_resolver(_FLOAT, FLOAT_RE, list("-+0123456789."))


def read_text(path: str | os.PathLike[str], what: str = "sweep YAML") -> str:
    """The text of ``path``; a missing, unreadable, oversized, binary or non-UTF-8 file is a
    one-line :class:`ConfigError`."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, not a {what}")
    if not p.exists():
        raise ConfigError(f"{p}: no such file")
    if not p.is_file():
        raise ConfigError(f"{p}: not a regular file, not a {what}")
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{p}: {size / 2 ** 20:.0f} MB is too large for a {what} (at most "
                              f"{MAX_BYTES // 2 ** 20} MB; it holds a search space, not data)")
        data = p.read_bytes()
    except PermissionError:
        raise ConfigError(f"{p}: cannot be read (permission denied)") from None
    except OSError as err:
        raise ConfigError(f"{p}: cannot be read ({err.strerror or err})") from None
    if b"\0" in data[:8192]:
        raise ConfigError(f"{p}: a binary file, not a UTF-8 text {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not a UTF-8 text {what} (byte {err.start} is not UTF-8)") from None


def load_file(path: str | os.PathLike[str], what: str = "sweep YAML") -> Any:
    """The YAML document in file ``path`` (see the module docstring for what is refused)."""
    return loads(read_text(path, what), str(path))


def loads(text: str, source: str) -> Any:
    """The YAML document in ``text``; errors start with ``source`` (a file, or ``--set 'k=v'``)."""
    _check_events(text, source)
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {yaml_message(err)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as err:  # e.g. an int of 5000 digits
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None


def yaml_message(err: yaml.YAMLError) -> str:
    """A PyYAML error as one line: the problem and where."""
    if isinstance(err, yaml.reader.ReaderError):
        code = err.character if isinstance(err.character, int) else ord(err.character or "\0")
        return f"unacceptable character #x{code:04x} at position {err.position}: {err.reason}"
    if isinstance(err, MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        text = "; ".join(str(p) for p in (err.context, err.problem) if p) or "malformed"
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        return " ".join(f"{text}{where}".split())
    return " ".join(str(err).split())


class _Frame:
    __slots__ = ("mapping", "path", "items", "key", "keys", "anchor", "start")

    def __init__(self, mapping: bool, path: str, anchor: str | None, start: int) -> None:
        self.mapping = mapping
        self.path = path
        self.items = 0
        self.key: str | None = None          # mapping: the key whose value comes next (None: a key comes next)
        self.keys: dict[str, int] = {}       # mapping: key -> line
        self.anchor = anchor
        self.start = start


def _line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return mark.line + 1 if mark is not None else 0


def _check_events(text: str, source: str) -> None:
    """Walk the parser's events once: key types, duplicate keys, depth, sizes, alias expansion."""
    loader = SpecLoader(text)
    stack: list[_Frame] = []
    sizes: dict[str, int] = {}      # anchor -> values it stands for
    open_anchors: set[str] = set()
    total = 0

    def fail(where: str, message: str) -> ConfigError:
        if len(where) > 120:
            where = f"{where[:50]}...{where[-60:]}"
        return ConfigError(f"{source}: {where + ': ' if where else ''}{message}")

    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    sizes[frame.anchor] = total - frame.start + 1
                    open_anchors.discard(frame.anchor)
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue
            parent = stack[-1] if stack else None
            path = parent.path if parent else ""
            if parent is not None and parent.mapping and parent.key is None:  # this event is a key
                key = _key_of(loader, event)
                if key is None:
                    shown = _shown(event)
                    raise fail(path, f"mapping key {shown} (line {_line(event)}) is not a string; keys are "
                                     "names: write it in quotes if you mean the text")
                if key in parent.keys and key != "<<":
                    raise fail(_join(path, key), f"given twice (lines {parent.keys[key]} and {_line(event)})")
                parent.keys[key] = _line(event)
                parent.key = key
                total += 1
                continue
            if parent is not None:
                parent.items += 1
                if parent.items > MAX_ITEMS:
                    raise fail(path or "the document", f"more than {MAX_ITEMS} entries; a sweep YAML holds a "
                                                       "search space, not data (use a range such as uniform, "
                                                       "loguniform or randint, or fewer values)")
                if parent.mapping:
                    path = _join(path, parent.key or "")
                    parent.key = None
                else:
                    path = f"{path}[{parent.items - 1}]"
            if isinstance(event, yaml.AliasEvent):
                if event.anchor in open_anchors:
                    raise fail(path, f"alias *{event.anchor} (line {_line(event)}) refers to a value that "
                                     "contains it (a recursive alias)")
                total += sizes.get(event.anchor, 1)
            else:
                total += 1
            if total > MAX_NODES:
                raise fail("", f"the document expands to more than {MAX_NODES} values (aliases count each "
                               "time they are used: a 'billion laughs' document?); write fewer or smaller aliases")
            anchor = getattr(event, "anchor", None)
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise fail(path, f"nested more than {MAX_DEPTH} levels deep (line {_line(event)})")
                stack.append(_Frame(isinstance(event, yaml.MappingStartEvent), path, anchor, total))
                if anchor is not None:
                    open_anchors.add(anchor)
            elif isinstance(event, yaml.ScalarEvent) and anchor is not None:
                sizes[anchor] = 1
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {yaml_message(err)}") from None
    except (ValueError, TypeError) as err:  # e.g. text the C parser cannot encode (a lone surrogate)
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(err).split())}") from None
    finally:
        loader.dispose()


def _key_of(loader: Any, event: Any) -> str | None:
    """The text of a string key (``<<`` for a merge key), or None for a key that is not a string."""
    if not isinstance(event, yaml.ScalarEvent):
        return None
    if event.tag not in (None, "!"):
        tag = event.tag
    else:
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit) if event.tag is None else _STR
    if tag == _MERGE:
        return "<<"
    return event.value if tag == _STR else None


def _shown(event: Any) -> str:
    if isinstance(event, yaml.ScalarEvent):
        value = event.value if len(event.value) <= 40 else event.value[:37] + "..."
        return value if value else "null"
    if isinstance(event, yaml.AliasEvent):
        return f"*{event.anchor}"
    return "[...] (a list)" if isinstance(event, yaml.SequenceStartEvent) else "{...} (a mapping)"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
