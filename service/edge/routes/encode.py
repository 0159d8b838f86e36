"""POST /v1/encode: texts -> L2-normalised embeddings, with the version of the model that produced them.

The body is validated from its bytes and the rows written by orjson (`service/edge/wire.py`): for a model
this small, FastAPI's typed body and a pydantic response of 384 floats cost more than the model run.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from service.edge.deps import serving_request
from service.edge.hooks import EdgeEvent
from service.edge.schemas import EncodeRequest, EncodeResponse
from service.edge.wire import json_response, rows_as

router = APIRouter(prefix="/v1", tags=["encode"])


@router.post("/encode", response_model=EncodeResponse)
async def encode(request: Request) -> Response:
    req, state, model = await serving_request(request, EncodeRequest)
    start = time.perf_counter()
    rows = await state.embedder.embed(model, req.texts)
    latency = time.perf_counter() - start
    state.observe(EdgeEvent("/v1/encode", model.release_id, texts=len(req.texts), latency_s=latency))
    body = {"model_version": model.release_id, "dim": model.dim, "embeddings": rows_as(rows, req.encoding_format)}
    return json_response(body)
