"""POST /v1/rank: behaviours + candidates -> the top_k candidates for this user, best first.

Behaviour and candidate texts are embedded in one call (each distinct text once: a grocery history repeats
its products), then scored on the device: by the bundle's learned ranker (`ranker.json`: repeats, cycles,
hour and weekday, related behaviours) when it ships one, else by the content ranker of `service.edge.ranker`.
Nothing about the user leaves the device.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from fastapi import APIRouter, Request, Response

from service.edge import ranker
from service.edge.deps import serving_request
from service.edge.hooks import EdgeEvent
from service.edge.ranker_features import Clock
from service.edge.schemas import RankRequest, RankResponse
from service.edge.scoring import rank_scores
from service.edge.wire import json_response

router = APIRouter(prefix="/v1", tags=["rank"])


@router.post("/rank", response_model=RankResponse)
async def rank(request: Request) -> Response:
    req, state, model = await serving_request(request, RankRequest)
    start = time.perf_counter()
    n = len(req.behaviors)
    texts = [b.text for b in req.behaviors] + [c.text for c in req.candidates]
    row_of = {t: i for i, t in enumerate(dict.fromkeys(texts))}  # each distinct text embedded once
    rows = await state.embedder.embed(model, list(row_of))
    rows = rows[[row_of[t] for t in texts]] if len(row_of) < len(texts) else rows
    with_prior = req.candidates[0].prior is not None  # the schema guarantees all or none
    scores = rank_scores(
        model.ranker,
        state.ranker,
        rows[:n],
        rows[n:],
        ts=[b.ts for b in req.behaviors],
        kinds=[b.kind for b in req.behaviors],
        behavior_ids=[b.item_id for b in req.behaviors],
        behavior_texts=[b.text for b in req.behaviors],
        candidate_ids=[c.item_id for c in req.candidates],
        candidate_texts=[c.text for c in req.candidates],
        clock=Clock(now=req.now, utc_offset_s=60.0 * req.utc_offset_min),
        prior=np.array([c.prior for c in req.candidates], dtype=np.float64) if with_prior else None,
    )
    best = ranker.top_k(scores, req.top_k)
    items = [{"id": req.candidates[i].id, "score": round(float(scores[i]), 6)} for i in best]
    event = EdgeEvent("/v1/rank", model.release_id, texts=len(rows), latency_s=time.perf_counter() - start)
    state.observe(replace(event, top_k=req.top_k, candidates=len(req.candidates), behaviors=n))
    return json_response({"model_version": model.release_id, "items": items})
