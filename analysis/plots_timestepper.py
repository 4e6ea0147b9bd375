"""timestepper plot kinds (filled in by the family's plotting work)."""

from __future__ import annotations

from .plotbase import PlotKind

PLOTS: dict[str, PlotKind] = {}
