"""Fleet metrics: per (metric, version, day) group, "open" until its day closes, then released once (de-biased
LDP estimates with 95% CIs, or "withheld" below k_min devices) and immutable (service/cloud/privacy.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.cloud.ab_readout import ab_readout
from service.cloud.deps import ContextDep, MaybeAdminDep
from service.cloud.privacy import published
from service.cloud.schemas import FleetMetricsPublic

router = APIRouter(prefix="/v1/fleet", tags=["fleet"])

MAX_GROUPS = 1000


@router.get("/metrics")
async def fleet_metrics(
    ctx: ContextDep,
    admin: MaybeAdminDep,
    metric: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")] = None,
    model_version: Annotated[str | None, Query(max_length=129, pattern=r"^[A-Za-z0-9_.+-]+$")] = None,
    day: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GROUPS)] = 200,
) -> FleetMetricsPublic:
    """Most recent days last; at most `limit` groups (the newest). Released groups only, unless the caller
    sends the admin token: then open and withheld groups too. `ab` compares the rollout's two versions over the
    released groups of this response (service/cloud/ab_readout.py)."""
    aggregates = await ctx.store.fleet(metric=metric, model_version=model_version, day=day)
    s = ctx.settings
    today = await ctx.clock.today()
    items = await published(
        ctx.store, aggregates, today=today, window_days=s.report_window_days, k_min=s.k_min, admin=admin
    )
    items = items[-limit:]  # after the filter: the limit must not reveal how many groups were hidden
    ab = ab_readout(items, await ctx.store.get_rollout())
    return FleetMetricsPublic(k_min=ctx.settings.k_min, data=items, count=len(items), ab=ab)
