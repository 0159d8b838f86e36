"""POST /v1/embeddings: the OpenAI Embeddings API (`service/edge/embeddings_api.py`) on the edge node.

Same rows as /v1/encode (same embedder: cache, admission control, batching), in OpenAI's envelope, so a tool
written for that API only needs this node's URL. `model` must name what this node serves: `eibert` (whatever
eibert model the node serves now, so a client configured once keeps working across rollouts, even to another
model line such as `eibert-small`), the model line (manifest name) or the release id `{name}-{version}` (to pin
one release). Any other name would put vectors of another model's space into someone's index without a word,
so that is a 404, as OpenAI answers an unknown model; every answer's `model` is the release id that produced
the rows, so a client can tell when a rollout changed them. `dimensions` other
than the model's own width is a 400: these embeddings are not trained to be truncated (no Matryoshka loss),
so cutting them would serve worse vectors than the client thinks it asked for.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request, Response

from service.edge.deps import serving_model, state_of
from service.edge.embeddings_api import MODEL_ALIAS, EmbeddingsRequest, EmbeddingsResponse
from service.edge.hooks import EdgeEvent
from service.edge.lean import LeanRoute
from service.edge.openai_errors import OpenAIRefusal
from service.edge.slot import LoadedModel
from service.edge.state import EdgeState
from service.edge.wire import json_bytes, json_response, parse_json, rows_as

router = APIRouter(prefix="/v1", tags=["embeddings"])


def served_names(model: LoadedModel) -> tuple[str, ...]:
    """What `model` may be called in a request: the alias, the model line, the release id."""
    return (MODEL_ALIAS, model.manifest.name, model.release_id)


def check_model(req: EmbeddingsRequest, model: LoadedModel) -> None:
    """OpenAIRefusal 404 unless `req.model` names the serving model, 400 for a `dimensions` it does not have
    (both in OpenAI's shape, naming the parameter)."""
    names = served_names(model)
    if req.model not in names:
        accepted = " or ".join(repr(n) for n in dict.fromkeys(names))
        raise OpenAIRefusal(
            404,
            f"model {req.model!r} is not served here; this node serves {model.release_id} (model={accepted})",
            param="model",
            code="model_not_found",
        )
    if req.dimensions is not None and req.dimensions != model.dim:
        raise OpenAIRefusal(
            400,
            f"dimensions={req.dimensions} is not supported: {model.release_id} gives {model.dim}-dimensional "
            f"embeddings only (omit dimensions, or send {model.dim})",
            param="dimensions",
            code="unsupported_dimensions",
        )


async def count_tokens(model: LoadedModel, texts: list[str]) -> int:
    """In a worker thread, however short the texts: what a tokenizer costs per character is the bundle's choice."""
    return sum(await asyncio.to_thread(model.encoder.count_tokens, texts))


async def embeddings_json(state: EdgeState, body: bytes, content_type: str | None) -> bytes:
    """The endpoint's work, bytes in and bytes out: the lean layer (`service/edge/lean.py`) calls it."""
    req = parse_json(body, content_type, EmbeddingsRequest)
    model = serving_model(state)
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
    return json_bytes({"object": "list", "data": data, "model": model.release_id, "usage": usage})


@router.post("/embeddings", response_model=EmbeddingsResponse)
async def embeddings(request: Request) -> Response:
    body, content_type = await request.body(), request.headers.get("content-type")
    return json_response(await embeddings_json(state_of(request), body, content_type))


LEAN = LeanRoute("/v1/embeddings", embeddings_json, router)
