"""The cloud's OpenAPI table: what each route answers beyond its shape and dependencies
(`service.common.openapi_docs` adds 422/413 and the dependency statuses by itself).

A new route that can answer a status its dependencies do not imply gets a line here; a key that names no
route fails `create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI

from service.cloud.deps import current_device, get_ctx, require_admin
from service.common.openapi_docs import RouteDoc, document_responses

PROMETHEUS_TEXT = "text/plain"  # the exposition format (CONTENT_TYPE_LATEST adds version and charset)
ARCHIVE = "application/gzip"
BLOB = "application/octet-stream"  # a bundle file by content address (what devices download)

# 400: a malformed Content-Length is refused by the body limit on any route.
EVERY: tuple[int, ...] = (400,)

BY_DEPENDENCY = {
    require_admin: (401, 403),
    current_device: (401,),
    get_ctx: (503,),  # the store (or its blob) is unreachable: StoreError
}

ROUTE_DOCS: dict[str, RouteDoc] = {
    "POST /v1/devices": RouteDoc(errors=(401, 403, 409, 429)),  # enrolment token: missing, spent, rate-limited
    "POST /v1/enrolment-tokens": RouteDoc(errors=(422,)),
    "DELETE /v1/enrolment-tokens/{token_id}": RouteDoc(errors=(404, 422)),
    "DELETE /v1/devices/{device_id}": RouteDoc(errors=(404, 422)),
    "POST /v1/devices/{device_id}/token": RouteDoc(errors=(401, 422)),
    "POST /v1/keys/rotations": RouteDoc(errors=(409, 422)),
    "POST /v1/clock": RouteDoc(errors=(403,)),  # only a dev-mode cloud's clock moves
    "GET /v1/devices/{device_id}/model": RouteDoc(errors=(401, 403, 404, 422, 503)),  # checked by hand: hot path
    "POST /v1/models": RouteDoc(errors=(409, 415, 422, 429), request=ARCHIVE),  # 429: admission slots busy
    "GET /v1/models/{version}": RouteDoc(errors=(404,)),
    "GET /v1/models/{version}/bundle": RouteDoc(errors=(404, 416), content=ARCHIVE, extra=(206,), bodiless=(304,)),
    "GET /v1/blobs/{sha256}": RouteDoc(errors=(404, 416), content=BLOB, extra=(206,), bodiless=(304,)),
    "PUT /v1/rollout": RouteDoc(errors=(404, 409)),
    "POST /v1/rollback": RouteDoc(errors=(409,)),
    "POST /v1/telemetry": RouteDoc(errors=(413, 422)),
    "GET /readyz": RouteDoc(errors=(503,)),
    "GET /metrics": RouteDoc(content=PROMETHEUS_TEXT),
}


def document_cloud(app: FastAPI) -> None:
    document_responses(app, ROUTE_DOCS, every=EVERY, by_dependency=BY_DEPENDENCY)
