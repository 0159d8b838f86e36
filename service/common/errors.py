"""One exception tree for eibert; each app maps it to an HTTP status in a single handler.

EibertError
 ├── BundleError      a bundle is missing files, fails its sha256, has a wrong schema or contract
 ├── StoreError       the cloud store cannot read or write
 ├── RolloutError     a rollout request names an unknown version or an impossible state
 └── TelemetryError   a report is malformed, over budget or repeated
"""

from __future__ import annotations


class EibertError(Exception):
    """Root of every error eibert raises on purpose."""


class BundleError(EibertError):
    """A model bundle cannot be trusted or opened."""


class StoreError(EibertError):
    """The cloud's store failed."""


class RolloutError(EibertError):
    """A rollout operation is invalid."""


class TelemetryError(EibertError):
    """A telemetry report was refused."""
