"""Enrolment tokens: the operator-issued credential `POST /v1/devices` requires (service/cloud/enrolment.py)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.cloud.deps import AdminDep, ContextDep
from service.cloud.enrolment import issue_token
from service.cloud.schemas import EnrolmentTokenCreate, EnrolmentTokenPublic

router = APIRouter(prefix="/v1/enrolment-tokens", tags=["devices"])


@router.post(
    "",
    status_code=201,
    responses={401: {"description": "no admin token"}, 403: {"description": "not the admin token"}},
)
async def create_enrolment_token(body: EnrolmentTokenCreate, _admin: AdminDep, ctx: ContextDep) -> EnrolmentTokenPublic:
    """A new enrolment token, shown once (only its sha256 is stored), good for `max_devices` enrolments."""
    limit = ctx.settings.max_enrolment_token_devices
    if body.max_devices > limit:
        raise HTTPException(422, f"max_devices is {body.max_devices}; this cloud allows at most {limit} per token")
    return await issue_token(ctx.store, body)
