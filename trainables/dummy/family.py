"""The dummy family: config and ``run(config, reporter)`` (see the package docstring)."""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from trainables.common.config import FamilyConfig
from trainables.common.errors import ConfigError, DivergedError
from trainables.common.reporter import Reporter

FAILURES = ("none", "raise", "nan", "exit", "kill", "config", "once")


@dataclass(frozen=True)
class DummyConfig(FamilyConfig):
    x: float = 0.0
    target: float = 1.0
    steps: int = 10
    sleep_s: float = 0.0
    report_every: int = 1
    checkpoint_every: int = 1
    fail: str = "none"
    fail_at: int = 1
    marker_dir: str | None = None
    stop_file: str | None = None
    gate_file: str | None = None
    gate_at: int = 1
    choice: str = "a"
    extra: float = 0.0

    def __post_init__(self) -> None:
        if self.fail not in FAILURES:
            raise ConfigError(f"config.fail: {self.fail!r} is not allowed; allowed: {', '.join(FAILURES)}")
        if self.steps < 1:
            raise ConfigError(f"config.steps: {self.steps} must be >= 1")


    def metric_names(self) -> set[str]:
        return {"loss", "step", "t_start", "t_now"}


def run(config: Mapping[str, Any] | DummyConfig, reporter: Reporter) -> dict[str, float]:
    """Report ``loss`` every ``report_every`` steps, failing as configured."""
    cfg = DummyConfig.from_dict(config)
    t_start = time.time()
    start = 0
    restore = reporter.restore_dir()
    if restore:
        start = json.loads((Path(restore) / "state.json").read_text())["step"]
    if cfg.marker_dir:  # one line per attempt (start time, step it starts from), for tests of retries
        with open(Path(cfg.marker_dir) / f"attempts-x={cfg.x}", "a") as f:
            f.write(f"{t_start} {start}\n")
    last: dict[str, float] = {}
    for step in range(start + 1, cfg.steps + 1):
        if cfg.sleep_s:
            time.sleep(cfg.sleep_s)
        if step == cfg.fail_at:
            _fail(cfg, step)
        while cfg.gate_file and step == cfg.gate_at and not os.path.exists(cfg.gate_file):
            time.sleep(0.05)
        loss = (cfg.x - cfg.target) ** 2 / (1 + step) + cfg.extra
        if cfg.fail == "nan" and step >= cfg.fail_at:
            loss = math.nan
        if not math.isfinite(loss):
            raise DivergedError(f"loss is {loss}", step)
        last_step = step == cfg.steps or bool(cfg.stop_file and os.path.exists(cfg.stop_file))
        if step % cfg.report_every == 0 or last_step:
            last = {"loss": loss, "target": cfg.target, "t_start": t_start, "t_now": time.time(),
                    "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "<unset>")}
            if step % cfg.checkpoint_every and not last_step:
                reporter.report(step, last)
                continue
            with tempfile.TemporaryDirectory(prefix="dynsweep-dummy-") as ckpt:
                (Path(ckpt) / "state.json").write_text(json.dumps({"step": step}))
                (Path(ckpt) / "config.json").write_text(json.dumps(cfg.to_dict()))
                reporter.report(step, last, ckpt)
        if last_step:
            break
    return last


def _fail(cfg: DummyConfig, step: int) -> None:
    if cfg.fail == "raise":
        raise RuntimeError(f"dummy failure at step {step}")
    if cfg.fail == "exit":
        os._exit(3)
    if cfg.fail == "kill":  # what the OOM killer or a user's kill -9 does
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.fail == "config":
        raise ConfigError(f"config.fail: dummy config error at step {step}")
    if cfg.fail == "once" and cfg.marker_dir:  # fail on the first attempt only
        marker = Path(cfg.marker_dir) / f"x={cfg.x}"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("failed once")
            raise RuntimeError(f"dummy first-attempt failure at step {step}")
