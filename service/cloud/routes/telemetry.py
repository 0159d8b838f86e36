"""LDP telemetry ingest: a device posts already-privatised reports; each gets accepted / duplicate / refused."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.cloud.deps import ContextDep, DeviceDep
from service.cloud.privacy import ingest_reports
from service.common.ldp import TelemetryAck, TelemetryBatch

router = APIRouter(prefix="/v1", tags=["telemetry"])


@router.post("/telemetry", responses={422: {"description": "malformed, or a report not at its metric's epsilon"}})
async def post_telemetry(batch: TelemetryBatch, device_id: DeviceDep, ctx: ContextDep) -> TelemetryAck:
    """Answered only after the store has applied the batch (budget, idempotency, one report per device and
    group, and aggregates atomically). A report under a version this device was never offered is refused."""
    limit = ctx.settings.max_reports_per_batch
    if len(batch.reports) > limit:
        raise HTTPException(413, f"{len(batch.reports)} reports in one batch; the limit is {limit}")
    ack = await ingest_reports(
        store=ctx.store,
        device_id=device_id,
        reports=batch.reports,
        budget=ctx.settings.daily_epsilon_budget,
        window_days=ctx.settings.report_window_days,
        today=await ctx.clock.today(),  # the server's day: the client's label never picks the budget
    )
    for status, n in (("accepted", ack.accepted), ("duplicate", ack.duplicate), ("refused", ack.refused)):
        if n:
            ctx.metrics.reports.labels(status).inc(n)
    return ack
