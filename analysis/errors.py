"""Errors a user can cause in an analysis command (a sweep or run not found, an unknown column
or metric): the CLI prints them as one line, like dynsweep's other user errors."""


class AnalysisError(Exception):
    """A mistake in an analysis command's input; the message says what to change."""
