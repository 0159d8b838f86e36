"""The edge's status table for the shared error handlers (`service.common.http_errors`): one body shape,
`{"error": code, "message": text}`, on the edge and the cloud.

Client mistakes are 4xx naming the field or the limit; an overloaded node answers 429 with Retry-After;
model-side failures are 503 (the node is up but cannot serve that request right now).
"""

from __future__ import annotations

from fastapi import FastAPI

from service.common.errors import BundleError, EibertError
from service.common.http_errors import install_error_handlers as install_shared_handlers
from service.edge.batching import BatcherStopped
from service.edge.embedder import Overloaded

STATUS: dict[type[Exception], tuple[int, str | None]] = {
    Overloaded: (429, "overloaded"),
    BundleError: (503, "model_unavailable"),
    BatcherStopped: (503, "model_unavailable"),
    EibertError: (500, "internal"),
}


def install_error_handlers(app: FastAPI) -> None:
    install_shared_handlers(app, STATUS)
