"""The signing key's rotation chain (service/common/key_rotation.py): anyone reads it (devices follow it), only
the admin extends it, and only with a statement the current newest key signed."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException

from service.cloud.deps import ADMIN_ONLY, AdminDep, ContextDep
from service.cloud.schemas import KeyRotationsPublic
from service.common.key_rotation import MAX_ROTATIONS, RotationError, TrustedKey, open_rotation, stored_head

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.get("/rotations")
async def list_rotations(ctx: ContextDep) -> KeyRotationsPublic:
    """Every rotation statement, oldest first: a device that trusts key N follows N+1, N+2, ... from here."""
    data = [json.loads(s) for s in await ctx.store.rotations()]
    return KeyRotationsPublic(data=data, count=len(data))


@router.post(
    "/rotations",
    status_code=201,
    responses={
        **ADMIN_ONLY,
        409: {"description": "a rotation to that key version is stored already"},
        422: {"description": "not signed by the newest key and the key it names, or for another deployment"},
    },
)
async def add_rotation(statement: dict[str, Any], _admin: AdminDep, ctx: ContextDep) -> TrustedKey:
    """Extend the chain with a statement signed by its newest key and the key it names (`eibert keys rotate`
    makes one). Then restart the replicas with the new key: devices follow once offers are signed by it."""
    # key 1 is the one devices pinned: this cloud's signing key while the chain is empty
    current = stored_head(await ctx.store.rotations(), ctx.registry.public_key)
    if current.version > MAX_ROTATIONS:
        raise HTTPException(422, f"the chain already holds {MAX_ROTATIONS} rotations, the most devices read")
    try:
        nxt = open_rotation(statement, current, ctx.settings.deployment)
    except RotationError as exc:
        raise HTTPException(422, f"rotation refused: {exc}") from None
    if not await ctx.store.add_rotation(nxt.version, json.dumps(statement, sort_keys=True)):
        raise HTTPException(409, f"a rotation to key {nxt.version} is stored already")
    return nxt
