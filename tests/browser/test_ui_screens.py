"""Screenshots of ``dynsweep ui`` in headless Chromium (skipped without ``chromium``): the pages a
user opens from the printed URLs, saved as PNGs to look at, plus what their DOM must show.

    apt-get install -y chromium
    DYNSWEEP_UI_SCREENS=screens .venv/bin/python -m pytest tests/browser -q   # PNGs in ./screens

Chromium is driven directly (``--headless --screenshot --virtual-time-budget``), one page per
call, so there are no clicks: pages are opened by their URLs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_ui import DYNSWEEP, _lines_until, sweep  # noqa: F401  (the tiny sweep fixture)

from analysis.ui import stop_group

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
              pytest.mark.skipif(os.environ.get("CI") == "true" and not os.environ.get("DYNSWEEP_UI_SCREENS"),
                                 reason="screenshots for a person to look at: DYNSWEEP_UI_SCREENS=dir (not in CI)")]
SIZE = "1600,1000"


def chromium(url: str, profile: Path, *args: str) -> str:
    done = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={SIZE}",
                           "--virtual-time-budget=25000", *args, url],
                          capture_output=True, text=True, timeout=180, check=False)
    return done.stdout


def shoot(url: str, png: Path, profile: Path) -> str:
    """Save ``url`` as ``png``; returns the page's DOM once the page has settled."""
    chromium(url, profile, f"--screenshot={png}")
    assert png.is_file() and png.stat().st_size > 20_000, f"{png}: no screenshot of {url}"
    return chromium(url, profile, "--dump-dom")


def test_screens(sweep: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811  (the imported fixture)
    out = Path(os.environ.get("DYNSWEEP_UI_SCREENS") or tmp_path / "screens")
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([DYNSWEEP, "ui", str(sweep["dir"]), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        lines = _lines_until(proc, "parent run")
        url = {key: next(x for x in lines if marker in x).split()[-1] for key, marker in
               (("runs", "best first"), ("compare", "/#/compare-runs?"), ("charts", "compareRunsMode=CHART"),
                ("parent", "parent run"))}
        base = url["runs"].split("/#/")[0]
        best = json.loads(dict(urllib.parse.parse_qsl(url["compare"].split("?", 1)[1]))["runs"])[0]
        trial = url["parent"].replace(sweep["parent"], best)
        profile = tmp_path / "profile"
        pages = {"1_landing": base + "/", "2_runs": url["runs"], "3_run": trial, "4_parent": url["parent"],
                 "5_charts": url["charts"], "6_compare": url["compare"]}
        dom = {name: shoot(page, out / f"{name}.png", profile) for name, page in pages.items()}
        print("\n".join(f"{out / name}.png: {page}" for name, page in pages.items()))
        runs = dom["2_runs"]
        assert "shared view" in runs and "does not exist" not in runs and "is invalid" not in runs
        assert "4</strong> matching runs" in runs or "4 matching runs" in runs.replace("<!-- -->", "")
        for text in ("loss", "choice", "Sort: loss"):
            assert text in runs
        assert "Parallel" in dom["5_charts"]
        assert best[:8] in dom["3_run"] and "uisweep" in dom["4_parent"]
    finally:
        stop_group(proc)
