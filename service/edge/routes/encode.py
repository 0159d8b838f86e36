"""POST /v1/encode: texts -> L2-normalised embeddings, with the version of the model that produced them.

The work is `encode_json`, bytes in and bytes out: the body is validated from its bytes and the rows written by
orjson (`service/edge/wire.py`), and the lean layer (`service/edge/lean.py`) calls it straight from ASGI. The
FastAPI route below documents the endpoint (OpenAPI, the metrics label) and answers the same way when the app
is built without the lean layer.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from service.edge.deps import serving_model, state_of
from service.edge.hooks import EdgeEvent
from service.edge.lean import LeanRoute
from service.edge.schemas import EncodeRequest, EncodeResponse
from service.edge.state import EdgeState
from service.edge.wire import json_bytes, json_response, parse_json, rows_as

router = APIRouter(prefix="/v1", tags=["encode"])


async def encode_json(state: EdgeState, body: bytes, content_type: str | None) -> bytes:
    req = parse_json(body, content_type, EncodeRequest)
    model = serving_model(state)
    start = time.perf_counter()
    rows = await state.embedder.embed(model, req.texts)
    latency = time.perf_counter() - start
    state.observe(EdgeEvent("/v1/encode", model.release_id, texts=len(req.texts), latency_s=latency))
    return json_bytes(
        {"model_version": model.release_id, "dim": model.dim, "embeddings": rows_as(rows, req.encoding_format)}
    )


@router.post("/encode", response_model=EncodeResponse)
async def encode(request: Request) -> Response:
    return json_response(
        await encode_json(state_of(request), await request.body(), request.headers.get("content-type"))
    )


LEAN = LeanRoute("/v1/encode", encode_json, router)
