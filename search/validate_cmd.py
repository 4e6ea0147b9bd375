"""``dynsweep validate``: check a sweep YAML and say what it would run; writes nothing, starts no Ray."""

from __future__ import annotations

import argparse
import json

from .spec import SweepSpec, load_spec


def run_validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec, args.overrides)
    facts = {"file": str(args.spec), "valid": True, "name": spec.name, "family": spec.family,
             "parameters": len(spec.params), "swept": [p.name for p in spec.params if p.kind != "fixed"],
             "algorithm": spec.algorithm, "num_samples": spec.num_samples, "trials": spec.total_trials(),
             "scheduler": spec.scheduler, "metric": spec.metric, "mode": spec.mode,
             "sweep_dir": str(spec.sweep_dir), "resources": {"cpu": spec.cpu, "gpu": spec.gpu}}
    if getattr(args, "format", "text") == "json":
        print(json.dumps(facts, indent=1))
        return 0
    print(f"{args.spec}: valid {spec.family} sweep {spec.name!r}: {len(spec.params)} parameters, "
          f"{trials_phrase(spec)}, {spec.scheduler}, metric {spec.metric} ({spec.mode})")
    return 0


def trials_phrase(spec: SweepSpec) -> str:
    """``optuna: 12 trials`` / ``grid: 288 trials (96 points x 3 samples)``."""
    total = spec.total_trials()
    if total != spec.num_samples:
        return f"{spec.algorithm}: {total} trials ({total // spec.num_samples} points x {spec.num_samples} samples)"
    return f"{spec.algorithm}: {total} trials"
