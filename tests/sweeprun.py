"""Running a small real sweep in a test: the spec written as YAML, validated like a user's file,
launched on a Ray of its own (2 CPUs, its own temp folder, shut down and removed afterwards)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ray
import yaml

from search.launch import launch
from search.spec import SweepSpec, load_spec


def run_sweep(root: Path, raw: dict[str, Any], ray_temp: Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Write ``raw`` to ``root/<name>.yaml``, launch it on a fresh local Ray whose temp folder is
    ``ray_temp``; returns the validated spec and the sweep's summary."""
    path = root / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    ray.init(num_cpus=2, _temp_dir=str(ray_temp), include_dashboard=False, log_to_driver=False)
    try:
        return spec, launch(spec, quiet=True)
    finally:
        ray.shutdown()
        shutil.rmtree(ray_temp, ignore_errors=True)
