"""Cloud-specific refinements of `service.common.errors`, and the one handler that maps the tree to HTTP.

EibertError
 ├── BundleError            422  the uploaded bundle is unsafe, inconsistent or does not load
 │    └── VersionConflictError  409  another bundle is already registered under that version
 ├── StoreError             503  the store is unreachable or failed
 ├── RolloutError           409  impossible rollout transition (e.g. nothing to roll back to)
 │    └── UnknownVersionError   404  the version is not registered / nothing released yet
 └── TelemetryError         422  a telemetry batch cannot be processed
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.common.errors import BundleError, EibertError, RolloutError, StoreError, TelemetryError

log = logging.getLogger(__name__)


class VersionConflictError(BundleError):
    """A different bundle is already registered under this version; versions are immutable."""


class UnknownVersionError(RolloutError):
    """The named version does not exist (or no version has been released to devices)."""


STATUS: dict[type[EibertError], int] = {
    VersionConflictError: 409,
    UnknownVersionError: 404,
    BundleError: 422,
    StoreError: 503,
    RolloutError: 409,
    TelemetryError: 422,
    EibertError: 400,
}


def status_for(exc: EibertError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400  # pragma: no cover - EibertError is always in the MRO


def error_body(kind: str, message: str) -> dict[str, str]:
    return {"error": kind, "detail": message}


async def _eibert_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EibertError)
    status = status_for(exc)
    if status >= 500:
        log.error("%s: %s", type(exc).__name__, exc)
    return JSONResponse(error_body(type(exc).__name__, str(exc)), status_code=status)


async def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    """422 with one readable message plus the located errors (input values left out: they can be large)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()[:20]]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    message = f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
    return JSONResponse({**error_body("ValidationError", message), "errors": errors}, status_code=422)


async def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    """HTTPException in the same body shape as everything else (keeps headers such as WWW-Authenticate)."""
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        error_body("HTTPError", str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EibertError, _eibert_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
