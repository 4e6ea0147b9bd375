"""What produced a run: dynsweep's own commit, the versions of the stack, who ran it, how.

The commit is the one of dynsweep's code as installed, read from the package's location: the
git checkout whose top folder holds ``search/`` (an editable install or a run from the
repository). A package copied elsewhere (a wheel in site-packages) is never mistaken for a
checkout, even when that folder sits inside some other git repository (a user's project with
its virtual environment): then the commit is ``unknown``, unless the build recorded it in
``search/_commit.txt``. Nothing here looks at the working directory.
"""

from __future__ import annotations

import getpass
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .version import package_version

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
"""The folder that holds ``search/``, ``trainables/`` and ``analysis/``."""
STACK = ("ray", "torch", "optuna", "mlflow", "polars", "numpy", "torchdiffeq")


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    return out.stdout.strip() if out.returncode == 0 else ""


def source_commit(root: Path = PACKAGE_ROOT) -> str:
    """dynsweep's commit as installed at ``root`` (see the module docstring), or ``unknown``."""
    recorded = root / "search" / "_commit.txt"
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if top and Path(top).resolve() == root.resolve() and _git(root, "ls-files", "search/__init__.py"):
            return _git(root, "rev-parse", "HEAD") or "unknown"
    except (OSError, subprocess.SubprocessError):
        pass
    return recorded.read_text().strip() if recorded.is_file() else "unknown"


def source_dirty(root: Path = PACKAGE_ROOT) -> bool:
    """Whether the checkout at ``root`` has uncommitted changes to tracked files."""
    try:
        return bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return False


def versions() -> dict[str, str]:
    """``{package: version}`` of dynsweep, Python and the stack it runs on."""
    out = {"dynsweep": package_version(), "python": platform.python_version()}
    for name in STACK:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_tags(command: str) -> dict[str, str]:
    """MLflow's provenance tags (``mlflow.source.*``, ``mlflow.user``) and dynsweep's versions."""
    commit = source_commit()
    tags = {"mlflow.source.git.commit": commit, "mlflow.source.name": command, "mlflow.source.type": "LOCAL",
            "mlflow.user": _user(), "dynsweep.source.dirty": str(commit != "unknown" and source_dirty()).lower()}
    tags.update({f"dynsweep.version.{k}": v for k, v in versions().items()})
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def command_line() -> str:
    """How this process was started, as a person would type it (``dynsweep launch x.yaml ...``)."""
    args = [Path(sys.argv[0]).name] + sys.argv[1:]
    return " ".join(args)[:500]
