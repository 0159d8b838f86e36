"""POST /v1/embeddings: the OpenAI Embeddings API (`service/edge/embeddings_api.py`) on the edge node.

Same rows as /v1/encode (same embedder: cache, admission control, batching), in OpenAI's envelope, so a tool
written for that API only needs this node's URL. `model` must name what this node serves (its name, or its
release id `{name}-{version}`): answering for another model's name would put vectors of the wrong space into
someone's index without a word, so that is a 404, as OpenAI answers an unknown model. `dimensions` other
than the model's own width is a 400: these embeddings are not trained to be truncated (no Matryoshka loss),
so cutting them would serve worse vectors than the client thinks it asked for.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, HTTPException, Request, Response

from service.edge.deps import serving_request
from service.edge.embeddings_api import EmbeddingsRequest, EmbeddingsResponse
from service.edge.hooks import EdgeEvent
from service.edge.slot import LoadedModel
from service.edge.wire import json_response, rows_as

router = APIRouter(prefix="/v1", tags=["embeddings"])


def check_model(req: EmbeddingsRequest, model: LoadedModel) -> None:
    """404 unless `req.model` names the serving model; 400 for a `dimensions` it does not have."""
    names = (model.manifest.name, model.release_id)
    if req.model not in names:
        raise HTTPException(
            status_code=404,
            detail=f"model {req.model!r} is not served here; this node serves {names[1]} (model={names[0]!r} "
            f"or {names[1]!r})",
        )
    if req.dimensions is not None and req.dimensions != model.dim:
        raise HTTPException(
            status_code=400,
            detail=f"dimensions={req.dimensions} is not supported: {names[1]} gives {model.dim}-dimensional "
            f"embeddings only (omit dimensions, or send {model.dim})",
        )


async def count_tokens(model: LoadedModel, texts: list[str]) -> int:
    """In a worker thread, however short the texts: what a tokenizer costs per character is the bundle's choice."""
    return sum(await asyncio.to_thread(model.encoder.count_tokens, texts))


@router.post("/embeddings", response_model=EmbeddingsResponse)
async def embeddings(request: Request) -> Response:
    req, state, model = await serving_request(request, EmbeddingsRequest)
    check_model(req, model)
    texts = req.texts
    start = time.perf_counter()
    rows = await state.embedder.embed(model, texts)
    latency = time.perf_counter() - start
    tokens = await count_tokens(model, texts)
    state.observe(EdgeEvent("/v1/embeddings", model.release_id, texts=len(texts), latency_s=latency))
    wire = rows_as(rows, req.encoding_format)
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(wire)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_response({"object": "list", "data": data, "model": model.release_id, "usage": usage})
