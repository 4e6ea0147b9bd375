"""The driver: sweep specs, Tuner construction, launch/resume/status and the CLI."""
