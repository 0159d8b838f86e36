"""Enrolment tokens: the operator-issued credential `POST /v1/devices` requires (service/cloud/enrolment.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from service.cloud.deps import ADMIN_ONLY, AdminDep, ContextDep
from service.cloud.enrolment import issue_token, token_info
from service.cloud.schemas import EnrolmentTokenCreate, EnrolmentTokenPublic, EnrolmentTokensPublic

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="the token's id (its sha256)")]

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


@router.get("", responses=ADMIN_ONLY)
async def list_enrolment_tokens(_admin: AdminDep, ctx: ContextDep) -> EnrolmentTokensPublic:
    """Every enrolment token issued, oldest first: id, label, quota and use, expiry, revoked. Never the token."""
    data = [token_info(r) for r in await ctx.store.list_enrolment_tokens()]
    return EnrolmentTokensPublic(data=data, count=len(data))


@router.delete("/{token_id}", status_code=204, responses={**ADMIN_ONLY, 404: {"description": "no such token"}})
async def revoke_enrolment_token(token_id: TokenId, _admin: AdminDep, ctx: ContextDep) -> Response:
    """No device can enrol with this token any more, on any replica; the devices it enrolled keep working
    (revoke them one by one with DELETE /v1/devices/{id})."""
    if not await ctx.store.revoke_enrolment_token(token_id):
        raise HTTPException(404, f"no enrolment token has the id {token_id}")
    return Response(status_code=204)
