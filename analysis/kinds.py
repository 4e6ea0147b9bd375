"""Names the analysis CLI offers, kept apart so that building the CLI imports no plotting code."""

KINDS = ("heatmap", "box", "curves", "loglog", "trajectory", "field", "parallel")
"""Plot kinds of ``dynsweep plot`` (see :mod:`analysis.plots`)."""

EVALUATORS = ("fanova", "ped-anova")
"""Importance evaluators of ``dynsweep importance`` (Optuna's fANOVA and PED-ANOVA)."""
