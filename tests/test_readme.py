"""The README's two commands stay true: CI runs the test command exactly."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    return re.findall(r"```bash\n(python3 -m venv .+?)\n```", (ROOT / "README.md").read_text())


def test_readme_has_two_commands_and_ci_runs_the_test_command() -> None:
    install_run, install_test = _commands()
    assert "dynsweep " in install_run and "pytest" in install_test
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_test in ci
    assert "requirements/cpu.txt" in install_run and "requirements/cpu.txt" in install_test
