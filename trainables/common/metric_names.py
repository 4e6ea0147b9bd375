"""Metric-name rules shared by the families."""

from __future__ import annotations


def under_dataset(metrics: dict[str, float], name: str) -> dict[str, float]:
    """``test/<metric>`` -> ``test/<name>/<metric>``: the final metrics of an extra dataset
    (``dynsweep evaluate --datasets name``) beside the run's own ``test/`` ones."""
    return {f"test/{name}/{k.removeprefix('test/')}": v for k, v in metrics.items()}
