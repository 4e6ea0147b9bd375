"""Failure classes from the text of a trial's error file (no Ray needed)."""

from __future__ import annotations

CRASH_SIGNS = ("actordiederror", "actor died", "actor is dead", "worker died", "worker process has died")


def classify_error_text(text: str) -> tuple[str, str]:
    """``(failure class, message)``: the ``[class] message`` of a ``TrialError`` when the trial
    raised one (see ``search.trainable``), else ``crashed`` / ``out-of-memory`` / ``error`` with
    the error's last line."""
    for line in text.splitlines():
        if "TrialError: [" in line or line.startswith("["):
            body = line.split("TrialError: ", 1)[-1]
            cls, _, msg = body[1:].partition("] ")
            return cls, msg.strip()
    lowered = text.lower()
    if any(sign in lowered for sign in CRASH_SIGNS):
        return "crashed", first_line(text)
    if "outofmemory" in lowered or "out of memory" in lowered:
        return "out-of-memory", first_line(text)
    return "error", first_line(text)


def first_line(text: str) -> str:
    """The line of an error text that says what happened (the last one outside the traceback)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Traceback", "  "))]
    return lines[-1] if lines else "unknown failure"
