"""Post-hoc analysis of sweeps; reads MLflow only (tables, diffs, failure triage, plots)."""
