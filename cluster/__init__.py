"""Running sweeps on more than one machine: cluster configs and connection code."""
