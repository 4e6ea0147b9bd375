"""How a trial ended: one vocabulary for the summary, ``dynsweep status``, MLflow and analysis.

======================  ==============  ===================================================
outcome                 MLflow status   meaning
======================  ==============  ===================================================
``completed``           FINISHED        the family trained to its end and evaluated
``stopped_early``       FINISHED        the scheduler (ASHA) stopped it: a normal result
``failed``              FAILED          it raised, diverged, failed in the solver or died
``timeout``             FAILED          it ran past ``trial_time_limit_s``
``interrupted``         KILLED          a person stopped the sweep (Ctrl-C, SIGTERM)
======================  ==============  ===================================================

The outcome is the MLflow tag ``dynsweep.outcome`` of a trial's run; a failed run also has
``failure_class`` and ``failure_message``. A trial that failed is never ranked: the sweep
metric's latest value in MLflow is set to NaN at its failure (the value it had reached is kept
as ``<metric>_before_failure`` and in the metric's history), so sorting the runs table by the
sweep metric, the best-run tag and the summary all leave it out.
"""

from __future__ import annotations

OUTCOME_TAG = "dynsweep.outcome"
STATUS = {"completed": "FINISHED", "stopped_early": "FINISHED", "failed": "FAILED", "timeout": "FAILED",
          "interrupted": "KILLED"}
"""Outcome -> MLflow run status."""
RANKED = ("completed", "stopped_early")
"""Outcomes whose sweep metric is a result."""


def ended_normally(stopped: bool, reached: float | None, max_t: float | None) -> str:
    """The outcome of a trial that ended without an error and was not interrupted: ``stopped_early``
    when a scheduler stopped it (Tune marks the result it stopped at ``done``, which the tracker
    sees) before its full budget ``max_t``; else ``completed`` -- also when it ran to its own end
    short of a larger ``max_t``."""
    full = max_t is not None and reached is not None and reached >= max_t
    return "stopped_early" if stopped and not full else "completed"
