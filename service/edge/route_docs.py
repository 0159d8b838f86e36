"""The edge's OpenAPI table: what each route answers beyond its shape and dependencies
(`service.common.openapi_docs` adds 422/413 and the dependency statuses by itself)."""

from __future__ import annotations

from fastapi import FastAPI

from service.common.openapi_docs import RouteDoc, document_responses
from service.edge.deps import current_model
from service.edge.embeddings_api import EmbeddingsRequest
from service.edge.openai_errors import OpenAIErrorBody
from service.edge.schemas import EncodeRequest, RankRequest

PROMETHEUS_TEXT = "text/plain"  # the exposition format (CONTENT_TYPE_LATEST adds version and charset)

BY_DEPENDENCY = {current_model: (503,)}  # no model loaded (yet, or any more)

# 429: load shedding (service.edge.embedder.Overloaded); 503: no model, the batcher stopped or the model failed.
# The hot routes validate their own bodies (service.edge.wire), so their body models are named here.
ROUTE_DOCS: dict[str, RouteDoc] = {
    "POST /v1/encode": RouteDoc(errors=(429, 503), body=EncodeRequest),
    # 400: a `dimensions` the model does not have; 404: a `model` this node does not serve; every error in
    # OpenAI's shape (service.edge.openai_errors), so OpenAI's clients show the message
    "POST /v1/embeddings": RouteDoc(errors=(400, 404, 429, 503), body=EmbeddingsRequest, error_body=OpenAIErrorBody),
    "POST /v1/rank": RouteDoc(errors=(429, 503), body=RankRequest),
    "GET /readyz": RouteDoc(errors=(503,)),
    "GET /metrics": RouteDoc(content=PROMETHEUS_TEXT),
}


def document_edge(app: FastAPI) -> None:
    document_responses(app, ROUTE_DOCS, by_dependency=BY_DEPENDENCY)
