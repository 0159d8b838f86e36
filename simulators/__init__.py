"""Device-fleet simulation: simulated devices running the edge runtime against a real cloud, over HTTP only.

`Fleet(FleetConfig(...)).run()` returns a `FleetSummary`; `eibert simulate` and `eibert demo` are its commands
(`simulators.cli`, `simulators.demo`). The names below load on first use: the main `eibert` parser imports
`simulators.cli_args` for every subcommand, and that must not drag in httpx, onnxruntime or the data loaders.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FaultSpec": "simulators.faults",
    "parse_faults": "simulators.faults",
    "Fleet": "simulators.fleet",
    "FleetConfig": "simulators.fleet",
    "ScheduledEvent": "simulators.fleet",
    "FleetSummary": "simulators.summary",
    "render": "simulators.summary",
}

__all__ = ["FaultSpec", "Fleet", "FleetConfig", "FleetSummary", "ScheduledEvent", "parse_faults", "render"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'simulators' has no attribute {name!r}")
