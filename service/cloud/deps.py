"""FastAPI dependencies as `Annotated` aliases, so route signatures read as types.

Everything lives on `app.state.ctx` (built by the lifespan from the settings passed to `create_app`); nothing
is created at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from service.cloud.auth import bearer, same_secret, token_hash
from service.cloud.clock import CloudClock
from service.cloud.config import Settings
from service.cloud.keys import AdminToken, AdminTokenUnusable
from service.cloud.metrics import CloudMetrics
from service.cloud.registry import Registry
from service.cloud.store import Store

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass
class CloudContext:
    settings: Settings
    store: Store
    registry: Registry
    metrics: CloudMetrics
    admin_token: AdminToken  # fixed, or a file re-read when it changes
    clock: CloudClock


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, and a
# thread hop per request would cost more than everything else on the polling path.


async def get_ctx(request: Request) -> CloudContext:
    return request.app.state.ctx


ContextDep = Annotated[CloudContext, Depends(get_ctx)]


async def get_store(ctx: ContextDep) -> Store:
    return ctx.store


async def get_registry(ctx: ContextDep) -> Registry:
    return ctx.registry


async def get_settings(ctx: ContextDep) -> Settings:
    return ctx.settings


StoreDep = Annotated[Store, Depends(get_store)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers=BEARER_CHALLENGE)


async def require_admin(request: Request, ctx: ContextDep) -> None:
    """401 without a bearer token, 403 with a wrong one (constant-time comparison)."""
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("admin endpoint: send Authorization: Bearer <admin token>")
    try:
        expected = ctx.admin_token.current()
    except AdminTokenUnusable as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    if not same_secret(token, expected):
        raise HTTPException(status_code=403, detail="admin token is not valid")


AdminDep = Annotated[None, Depends(require_admin)]
ADMIN_ONLY = {401: {"description": "no admin token"}, 403: {"description": "not the admin token"}}  # route docs


async def is_admin(request: Request, ctx: ContextDep) -> bool:
    """True with the admin token, False without any bearer token; a wrong token is refused as on admin routes
    (401/403), so a caller can never mistake a typo for the anonymous view, nor probe the token silently."""
    if request.headers.get("authorization") is None:
        return False
    await require_admin(request, ctx)
    return True


MaybeAdminDep = Annotated[bool, Depends(is_admin)]


async def current_device(request: Request, store: StoreDep) -> str:
    """The device a bearer token belongs to; 401 for a missing or unknown token."""
    token = bearer(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("send Authorization: Bearer <device token> (from POST /v1/devices)")
    device_id = await store.device_for_token(token_hash(token))
    if device_id is None:
        raise unauthorized("device token is not valid")
    return device_id


DeviceDep = Annotated[str, Depends(current_device)]
