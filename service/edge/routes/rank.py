"""POST /v1/rank: behaviours + candidates -> the top_k candidates for this user, best first.

Behaviour and candidate texts are embedded in one call (one batch, one cache pass), then scored by the
pure-numpy local ranker; nothing about the user leaves the device.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from fastapi import APIRouter, Request, Response

from service.edge import ranker
from service.edge.deps import serving_request
from service.edge.hooks import EdgeEvent
from service.edge.schemas import RankRequest, RankResponse
from service.edge.wire import json_response

router = APIRouter(prefix="/v1", tags=["rank"])


@router.post("/rank", response_model=RankResponse)
async def rank(request: Request) -> Response:
    req, state, model = await serving_request(request, RankRequest)
    start = time.perf_counter()
    n = len(req.behaviors)
    rows = await state.embedder.embed(model, [b.text for b in req.behaviors] + [c.text for c in req.candidates])
    with_prior = req.candidates[0].prior is not None  # the schema guarantees all or none
    scores = ranker.score(
        rows[:n],
        np.array([b.ts for b in req.behaviors], dtype=np.float64),
        rows[n:],
        state.ranker,
        kinds=[b.kind for b in req.behaviors],
        prior=np.array([c.prior for c in req.candidates], dtype=np.float64) if with_prior else None,
    )
    best = ranker.top_k(scores, req.top_k)
    items = [{"id": req.candidates[i].id, "score": round(float(scores[i]), 6)} for i in best]
    event = EdgeEvent("/v1/rank", model.release_id, texts=len(rows), latency_s=time.perf_counter() - start)
    state.observe(replace(event, top_k=req.top_k, candidates=len(req.candidates), behaviors=n))
    return json_response({"model_version": model.release_id, "items": items})
