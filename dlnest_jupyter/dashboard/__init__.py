"""ipywidgets panels (queue, GPUs, output, analyzers, metric curves, settings, sweeps); reads
through the client only. `Dashboard()` builds one; `%dlnest dashboard` shows one."""

from __future__ import annotations

from .dashboard import Dashboard

__all__ = ["Dashboard"]
