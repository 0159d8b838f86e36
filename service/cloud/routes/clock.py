"""The cloud's clock: anyone may read it; only an admin of a dev-mode cloud may advance it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.cloud.clock import ClockAdvance, ClockPublic
from service.cloud.deps import AdminDep, ContextDep

router = APIRouter(prefix="/v1/clock", tags=["clock"])


@router.get("")
async def get_clock(ctx: ContextDep) -> ClockPublic:
    return await ctx.clock.public(report_window_days=ctx.settings.report_window_days, advanceable=ctx.settings.dev_mode)


@router.post(
    "",
    responses={
        401: {"description": "no admin token"},
        403: {"description": "not a dev-mode cloud, or not the admin token"},
    },
)
async def advance_clock(body: ClockAdvance, _admin: AdminDep, ctx: ContextDep) -> ClockPublic:
    """Move the cloud's day forward (simulations and demos only); it never moves back."""
    if not ctx.settings.dev_mode:
        raise HTTPException(403, "the cloud clock can only be advanced on a dev-mode cloud (EIBERT_CLOUD_DEV_MODE=1)")
    await ctx.clock.advance(body.advance_days)
    return await get_clock(ctx)
