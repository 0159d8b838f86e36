"""The cloud's own errors, refinements of `service.common.errors`, and the table that maps the tree to HTTP (the body
shape and the handlers are the shared ones of `service.common.http_errors`).

EibertError
 ├── BundleError            422  the uploaded bundle is unsafe, inconsistent or does not load
 │    └── VersionConflictError  409  another bundle is already registered under that version
 ├── StoreError             503  the store is unreachable or failed
 ├── TelemetryError         422  a telemetry batch breaks a rule of the metric (e.g. not its epsilon)
 └── RolloutError           409  impossible rollout transition (e.g. nothing to roll back to)
      └── UnknownVersionError   404  the version is not registered / nothing released yet
"""

from __future__ import annotations

from fastapi import FastAPI

from service.common.errors import BundleError, EibertError
from service.common.http_errors import install_error_handlers as install_shared_handlers


class StoreError(EibertError):
    """The cloud's store (SQLite or Redis, and the blobs it holds) cannot read or write."""


class TelemetryError(EibertError):
    """A telemetry batch the cloud refuses whole: a report breaks its metric's configuration."""


class RolloutError(EibertError):
    """A rollout operation is invalid (only the cloud holds rollout state)."""


class VersionConflictError(BundleError):
    """A different bundle is already registered under this version; versions are immutable."""


class UnknownVersionError(RolloutError):
    """The named version does not exist (or no version has been released to devices)."""


# (status, code): code None = the class name, which is what clients (and the edge's updater) match on.
STATUS: dict[type[Exception], tuple[int, str | None]] = {
    VersionConflictError: (409, None),
    UnknownVersionError: (404, None),
    BundleError: (422, None),
    StoreError: (503, None),
    TelemetryError: (422, None),
    RolloutError: (409, None),
    EibertError: (400, None),
}


def install_error_handlers(app: FastAPI) -> None:
    """The shared body shape (`service.common.http_errors`) with the cloud's own status table."""
    install_shared_handlers(app, STATUS)
