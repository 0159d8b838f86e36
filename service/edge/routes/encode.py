"""POST /v1/encode: texts -> L2-normalised embeddings, with the version of the model that produced them."""

from __future__ import annotations

import time

from fastapi import APIRouter

from service.common.schemas import EncodeRequest, EncodeResponse
from service.edge.deps import ModelDep, StateDep
from service.edge.hooks import EdgeEvent

router = APIRouter(prefix="/v1", tags=["encode"])


@router.post("/encode")
async def encode(req: EncodeRequest, model: ModelDep, state: StateDep) -> EncodeResponse:
    start = time.perf_counter()
    rows = await state.embedder.embed(model, req.texts)
    latency = time.perf_counter() - start
    state.observe(EdgeEvent("/v1/encode", model.release_id, texts=len(req.texts), latency_s=latency))
    return EncodeResponse(model_version=model.version, dim=model.dim, embeddings=rows.tolist())
