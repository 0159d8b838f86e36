"""One error body for every 4xx/5xx the edge and the cloud send: `{"error": code, "message": text}`, plus
`errors` (one entry per located problem) on a validation failure.

Both apps install the same handlers, so a client (the edge's updater talking to the cloud, a simulator, an
operator's script) reads one shape everywhere, and the OpenAPI documents can name one schema (`ErrorBody`).
Validation details never echo the input back: it may be a user's private text, and it may be large.

Domain errors map to a status by the first class of their MRO found in the app's table, so a subclass can
refine its parent's status (the cloud's `VersionConflictError` is a `BundleError` but answers 409).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

MAX_FIELD_ERRORS = 20  # a body with thousands of bad items still gets a bounded answer

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "overloaded",
    503: "not_ready",
}


class FieldError(BaseModel):
    loc: str  # dotted path into the request, e.g. `texts.3` or `query.limit`
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response of both apps."""

    error: str  # a stable machine-readable code: `invalid_request`, `unauthorized`, `StoreError`, ...
    message: str  # for a person: what was wrong and, where it helps, which limit or field
    errors: list[FieldError] | None = None  # validation failures only


def error_body(code: str, message: str, errors: list[FieldError] | None = None) -> dict:
    return ErrorBody(error=code, message=message, errors=errors).model_dump(exclude_none=True)


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra
) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=dict(headers or {}) or None)


def http_code(status: int) -> str:
    return HTTP_CODES.get(status, "http_error")


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(loc=_loc(tuple(e.get("loc", ()))), msg=str(e.get("msg", "")), type=str(e.get("type", "")))
        for e in exc.errors()[:MAX_FIELD_ERRORS]
    ]
    message = f"{errors[0].loc}: {errors[0].msg}" if errors else "invalid request"
    return error_response(422, "invalid_request", message, errors=errors)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    """HTTPException in the shared shape, keeping its headers (WWW-Authenticate, Retry-After)."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, http_code(exc.status_code), str(exc.detail), headers=exc.headers)


def install_error_handlers(app: FastAPI, domain: Mapping[type[Exception], tuple[int, str | None]]) -> None:
    """Validation and HTTP errors in the shared shape, and each domain exception class mapped to
    (status, code); a code of None means the exception's class name. An exception may carry `headers`."""
    table = dict(domain)

    async def _domain(_request: Request, exc: Exception) -> JSONResponse:
        status, code = next(table[c] for c in type(exc).__mro__ if c in table)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        return error_response(status, code or type(exc).__name__, str(exc), headers=getattr(exc, "headers", None))

    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    for cls in table:
        app.add_exception_handler(cls, _domain)
