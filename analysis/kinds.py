"""Names the analysis CLI offers, kept apart so that building the CLI imports no plotting code."""

KINDS = ("curves", "box", "heatmap", "parallel",                         # every family
         "errors", "loglog", "trajectory", "field", "anomaly", "orbits",  # twobody
         "angles", "error-growth", "energy-drift",                       # pendulum
         "horizon", "energy", "dt-generalisation", "phase",              # worldmodels
         "pred-vs-true", "residuals", "by-loss",                         # regression
         "dt-orbit", "pareto",                                           # timestepper
         "frames", "pixel-horizon",                                      # visual
         "forecast")                                                     # latentode
"""Plot kinds of ``dynsweep plot`` (see :mod:`analysis.plots`; a test checks both lists agree)."""

EVALUATORS = ("fanova", "ped-anova")
"""Importance evaluators of ``dynsweep importance`` (Optuna's fANOVA and PED-ANOVA)."""
