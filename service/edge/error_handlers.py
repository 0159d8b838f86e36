"""One place that turns exceptions into JSON error bodies: `{"error": code, "message": text}`.

Client mistakes are 4xx naming the field; validation details never echo the input back (it may be a user's
private text). Model-side failures are 503 (the node is up but cannot serve that request right now).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.common.errors import BundleError, EibertError
from service.edge.batching import BatcherStopped

log = logging.getLogger(__name__)

_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 503: "not_ready"}


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": code, "message": message, **extra}


async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"loc": _loc(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    first = errors[0] if errors else {"loc": "body", "msg": "invalid request"}
    message = f"{first['loc']}: {first['msg']}"
    return JSONResponse(status_code=422, content=error_body("invalid_request", message, errors=errors))


async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
    code = _CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        status_code=exc.status_code, content=error_body(code, str(exc.detail)), headers=getattr(exc, "headers", None)
    )


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("request failed on the model side: %s", exc)
    return JSONResponse(status_code=503, content=error_body("model_unavailable", str(exc)))


async def _internal(_request: Request, exc: EibertError) -> JSONResponse:
    log.error("unexpected eibert error: %s", exc)
    return JSONResponse(status_code=500, content=error_body("internal", str(exc)))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(BundleError, _unavailable)
    app.add_exception_handler(BatcherStopped, _unavailable)
    app.add_exception_handler(EibertError, _internal)
