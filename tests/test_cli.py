"""The ``dynsweep`` command line: version, data generation, one-line errors, idempotence."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search.cli import main
from trainables.twobody.dataset import open_dataset


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("dynsweep 0.")


def test_console_script_is_installed_and_runs(tmp_path: Path) -> None:
    exe = shutil.which("dynsweep") or str(Path(sys.executable).parent / "dynsweep")
    out = subprocess.run([exe, "data", "twobody", "--orbits", "2", "--seed", "5", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "complex_TBP_planar_2_train" in out.stdout
    assert open_dataset(tmp_path / "complex_TBP_planar_2_train").params["seed"] == 5


def test_data_twobody_refuses_a_clash_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "twobody", "--orbits", "3", "--seed", "1", "--root", str(tmp_path)]
    assert main(args) == 0
    folder = tmp_path / "complex_TBP_planar_3_train"
    before = (folder / "samples.parquet").read_bytes()
    assert main(args) == 0  # same parameters: kept, nothing rewritten
    assert "exists, same parameters" in capsys.readouterr().out
    assert main(args[:-3] + ["2", "--root", str(tmp_path)]) == 2  # --seed 2: a clash
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dynsweep: error:") and "'seed': (1, 2)" in err[0]
    assert (folder / "samples.parquet").read_bytes() == before
    assert main(args[:-3] + ["2", "--root", str(tmp_path), "--overwrite"]) == 0
    assert open_dataset(folder).params["seed"] == 2


def test_data_3d_and_fixed_nu0_names(tmp_path: Path) -> None:
    assert main(["data", "twobody", "--kind", "simple", "--orbits", "4", "--split", "test", "--3d",
                 "--fixed-nu0", "--root", str(tmp_path)]) == 0
    ds = open_dataset("simple_TBP_3D_nu0fixed_4_test", root=tmp_path)
    assert ds.params["planar"] is False and ds.params["fixed_nu0"] is True


def test_bad_kind_is_rejected_with_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data", "twobody", "--kind", "hyperbolic", "--orbits", "3"])
    assert info.value.code == 2
    assert "choose from 'complex', 'simple', 'circular'" in capsys.readouterr().err


def test_standard_suite_is_idempotent_and_refuses_clashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "standard", "--root", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"complex_TBP_planar_{n}_{s}" for n in (1, 10, 100) for s in ("train", "test")]
                           + [f"complex_TBP_planar_{t}_{n}_test" for n in (1, 10, 100) for t in ("rotated", "mirrored")])
    hashes = {n: open_dataset(tmp_path / n).content_hash for n in names}
    assert main(["data", "standard", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("exists ") == 12
    assert {n: open_dataset(tmp_path / n).content_hash for n in names} == hashes
    # A clash (same name, other seed) is refused before anything is written.
    shutil.rmtree(tmp_path / "complex_TBP_planar_1_train")
    shutil.rmtree(tmp_path / "complex_TBP_planar_10_test")
    assert main(["data", "twobody", "--orbits", "10", "--split", "test", "--seed", "99", "--root", str(tmp_path)]) == 0
    assert main(["data", "standard", "--root", str(tmp_path)]) == 2
    assert "other parameters" in capsys.readouterr().err
    assert not (tmp_path / "complex_TBP_planar_1_train").exists()


def test_data_ls_lists_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "twobody", "--orbits", "2", "--root", str(tmp_path)])
    capsys.readouterr()
    assert main(["data", "ls", "--root", str(tmp_path)]) == 0
    assert "complex_TBP_planar_2_train  (2 orbits x 360 samples" in capsys.readouterr().out
