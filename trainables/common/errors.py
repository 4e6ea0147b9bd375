"""The exceptions a user can cause, in one small hierarchy.

Every message says what to change. The CLI prints ``DynsweepError`` subclasses as one line
(no traceback); anything else is an internal bug and keeps its traceback. The hierarchy lives
in ``trainables.common`` because both the families and the driver (``search``) raise these,
and dependencies point ``search -> trainables`` only.
"""

from __future__ import annotations


class DynsweepError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(DynsweepError):
    """A configuration value is wrong: unknown key or name, bad type, out of bounds."""


class DataError(DynsweepError):
    """A dataset is missing, corrupt, clashes with an existing one, or cannot serve a request."""


class DatasetExistsError(DataError):
    """Writing would overwrite an existing dataset or file and overwriting was not asked for."""


class SegmentationError(DataError):
    """A segmentation request yields zero segments for the data.

    Carries the numbers the sweep engine needs to refuse such a config before launching it.
    """

    def __init__(self, segment_length: int, orbit_length: int, fraction: tuple[float, float],
                 usable: int, where: str = "") -> None:
        self.segment_length = segment_length
        self.orbit_length = orbit_length
        self.fraction = fraction
        self.usable = usable
        loc = f"{where}: " if where else ""
        super().__init__(
            f"{loc}segment_length={segment_length} yields zero segments: each orbit has "
            f"{orbit_length} samples and orbit_fraction=[{fraction[0]:g}, {fraction[1]:g}] keeps "
            f"{usable} of them; use segment_length <= {usable} or a wider orbit_fraction"
        )


class ResourceError(DynsweepError):
    """A resource request that the machine or cluster can never satisfy."""


class TrialFailure(DynsweepError):
    """A trial that cannot go on; ``failure_class`` tells the sweep engine what kind.

    Attributes:
        failure_class: ``diverged`` | ``solver`` | ``config`` | ``data`` | ...
        step: the optimiser step at which it happened (None if before training).
        reason: a short, human-readable cause.
    """

    failure_class = "failed"

    def __init__(self, reason: str, step: int | None = None) -> None:
        self.reason = reason
        self.step = step
        at = f" at step {step}" if step is not None else ""
        super().__init__(f"{self.failure_class}{at}: {reason}")


class DivergedError(TrialFailure):
    """The loss or the parameters became NaN or infinite."""

    failure_class = "diverged"


class SolverError(TrialFailure):
    """The ODE solver failed: step size underflow, too many steps, non-finite state."""

    failure_class = "solver"
