"""Liveness, readiness (the store answers) and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.cloud.ab_readout import ab_readout
from service.cloud.deps import ContextDep
from service.cloud.errors import StoreError
from service.cloud.privacy import published
from service.common.http_errors import error_body
from service.common.liveness import healthz

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
router.add_api_route("/healthz", healthz, methods=["GET"])


@router.get("/readyz")
async def readyz(ctx: ContextDep) -> JSONResponse:
    try:
        await ctx.store.ping()
        durability = await ctx.store.durability()
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", **error_body("StoreError", str(exc))}, status_code=503)
    return JSONResponse({"status": "ready", "store": durability})


@router.get("/metrics")
async def metrics(ctx: ContextDep) -> Response:
    """Refresh rollout and released-estimate gauges from the store, then expose everything."""
    m = ctx.metrics
    try:
        state = await ctx.store.get_rollout()
        m.set_rollout(state)
        aggregates = await ctx.store.fleet()
        days = sorted({a.group.day for a in aggregates})[-ctx.settings.metrics_days :]
        s = ctx.settings
        recent = [a for a in aggregates if a.group.day in days]
        today = await ctx.clock.today()
        released = await published(ctx.store, recent, today=today, window_days=s.report_window_days, k_min=s.k_min)
        m.set_released(released)
        m.set_ab(ab_readout(released, state))
    except StoreError as exc:  # still expose request metrics; /readyz reports the store
        log.warning("metrics: store unavailable, rollout and estimate gauges are stale: %s", exc)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
