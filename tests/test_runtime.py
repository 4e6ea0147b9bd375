"""Where Ray's temp folder goes for a sweep folder of any path length (no Ray started here; the
sweep tests start real Rays from short and long paths)."""

from __future__ import annotations

from pathlib import Path

from search.runtime import MAX_TEMP_DIR_LEN, ray_temp_dir, spill_dir

SOCKET_TAIL = "/session_2026-12-01_18-22-37_131000_4194304/sockets/plasma_store"
"""The longest path Ray puts below its temp folder (a 7-digit pid)."""


def test_ray_sockets_fit_for_every_working_directory_length_from_20_to_120() -> None:
    for length in range(20, 121):
        cwd = Path("/" + "d" * (length - 1))
        sweep = cwd / "runs" / "quickstart"
        temp = ray_temp_dir(sweep)
        assert len(str(temp) + SOCKET_TAIL) <= 107, length          # AF_UNIX limit
        assert temp == ray_temp_dir(sweep)                           # the same folder again (resume finds it)
        if len(str(sweep / "ray")) <= MAX_TEMP_DIR_LEN:
            assert temp == sweep / "ray"                             # short paths keep it inside the sweep
        else:
            assert temp.parent.name.startswith("dynsweep-") and len(temp.name) == 12
        assert spill_dir(sweep) == sweep / "ray_spill"               # spilled objects stay with the sweep
    other = ray_temp_dir(Path("/" + "d" * 80) / "runs" / "other")
    assert other != ray_temp_dir(Path("/" + "d" * 80) / "runs" / "quickstart")   # one folder per sweep
