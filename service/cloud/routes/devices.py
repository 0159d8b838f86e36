"""Device enrolment and the polling path: which signed version a device should run.

`GET /v1/devices/{id}/model` is the hot path (every device polls it): one store round trip (token check and
rollout state together), then a cached, pre-serialised signed offer and ETag per (version, rollout generation,
issue window), so a 304 costs little more than the round trip.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request, Response

from service.cloud.auth import bearer, token_hash
from service.cloud.deps import ADMIN_ONLY, AdminDep, CloudContext, ContextDep, unauthorized
from service.cloud.enrolment import enrol_device, renew_device_token
from service.cloud.errors import StoreError, UnknownVersionError
from service.cloud.etags import etag_matches
from service.cloud.rollout import assign
from service.cloud.store import DeviceAuth
from service.common.device_api import DEVICE_ID_PATTERN, DeviceEnrolRequest, DeviceEnrolResponse, DeviceModelResponse

router = APIRouter(prefix="/v1/devices", tags=["devices"])

_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


@router.post(
    "",
    status_code=201,
    responses={
        401: {"description": "no enrolment token, or not a valid or unexpired one"},
        403: {"description": "the enrolment token's quota of devices is used up"},
        409: {"description": "the device id is already enrolled"},
        429: {"description": "too many enrolment attempts from this address or with this token (Retry-After)"},
    },
)
async def enrol(body: DeviceEnrolRequest, request: Request, ctx: ContextDep) -> DeviceEnrolResponse:
    """Issue a device token (shown once; only its sha256 is stored) to a caller holding an enrolment token.
    401 without a valid one, 403 once its quota is used, 409 if the id is taken, 429 over the rate limits."""
    token, expires_at = await enrol_device(
        ctx.store,
        ctx.settings,
        device_id=body.device_id,
        credential=bearer(request.headers.get("authorization")),
        source=request.client.host if request.client else "unknown",
    )
    return DeviceEnrolResponse(device_id=body.device_id, token=token, expires_at=expires_at)


def _checked_id(device_id: str) -> str:
    if _DEVICE_ID.fullmatch(device_id) is None:
        raise HTTPException(422, f"device_id must match {DEVICE_ID_PATTERN}")
    return device_id


@router.post(
    "/{device_id}/token",
    responses={401: {"description": "not this device's current, unexpired token (unknown, expired or revoked)"}},
)
async def renew_token(device_id: str, request: Request, ctx: ContextDep) -> DeviceEnrolResponse:
    """A new device token for the device presenting its current one, valid `device_token_ttl_s`; the old one
    stops working at once. Devices call this before their token expires."""
    token, expires_at = await renew_device_token(
        ctx.store,
        ctx.settings,
        device_id=_checked_id(device_id),
        credential=bearer(request.headers.get("authorization")),
    )
    return DeviceEnrolResponse(device_id=device_id, token=token, expires_at=expires_at)


@router.delete(
    "/{device_id}",
    status_code=204,
    responses={**ADMIN_ONLY, 404: {"description": "no such device"}},
)
async def revoke_device(device_id: str, _admin: AdminDep, ctx: ContextDep) -> Response:
    """The device's token stops working at once, on every replica (it is gone from the shared store); its id
    stays taken, so it cannot enrol again under it."""
    if not await ctx.store.revoke_device(_checked_id(device_id)):
        raise HTTPException(404, f"no device {device_id!r} is enrolled")
    return Response(status_code=204)


@router.get("/{device_id}/model", responses={200: {"model": DeviceModelResponse}, 304: {"description": "unchanged"}})
async def device_model(device_id: str, request: Request) -> Response:
    """The version this device should run, signed. No FastAPI dependencies here on purpose: solving them costs
    more than the rest of the 304 path, so the context is read from app.state and the id checked by hand."""
    _checked_id(device_id)
    ctx: CloudContext = request.app.state.ctx
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("send Authorization: Bearer <device token>")
    auth, state = await ctx.store.device_view(device_id, token_hash(token))
    if auth is DeviceAuth.UNKNOWN:
        raise unauthorized("device token is not valid")
    if auth is DeviceAuth.OTHER_DEVICE:
        raise HTTPException(403, "this token belongs to another device")
    version = assign(state, device_id)
    if version is None:
        raise UnknownVersionError("no model version has been released yet")
    record = await ctx.registry.get(version)
    if record is None:  # pragma: no cover - rollout only ever names registered versions
        raise StoreError(f"rollout names {version}, which is not registered")
    body, etag = ctx.registry.device_body(record, state.generation, since=state.updated_at)
    headers = {"etag": etag, "cache-control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)  # this body was served before, and recorded then
    await ctx.store.record_offer(device_id, version)  # the versions it may send telemetry under
    return Response(body, media_type="application/json", headers=headers)
