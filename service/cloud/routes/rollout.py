"""Staged rollout over HTTP (admin). The transitions are pure functions in `service.cloud.rollout`; here they
are applied with compare-and-set on the state's generation, retried a few times under contention."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from service.cloud.deps import AdminDep, RegistryDep, StoreDep
from service.cloud.errors import RolloutError
from service.cloud.rollout import RolloutState, rollback, set_rollout
from service.cloud.schemas import RolloutPublic, RolloutUpdate
from service.cloud.store import Store

router = APIRouter(prefix="/v1", tags=["rollout"])

CAS_ATTEMPTS = 5


def public(state: RolloutState) -> RolloutPublic:
    return RolloutPublic(
        stable=state.stable,
        candidate=state.candidate,
        percent=state.percent,
        previous_stable=state.history[-1] if state.history else None,
        generation=state.generation,
        updated_at=state.updated_at,
    )


async def apply(store: Store, transition: Callable[[RolloutState], RolloutState]) -> RolloutState:
    for _ in range(CAS_ATTEMPTS):
        current = await store.get_rollout()
        nxt = transition(current)
        if await store.cas_rollout(current.generation, nxt):
            return nxt
    raise RolloutError("the rollout state kept changing underneath this request; retry")


@router.get("/rollout")
async def show_rollout(store: StoreDep) -> RolloutPublic:
    return public(await store.get_rollout())


@router.put("/rollout")
async def put_rollout(body: RolloutUpdate, _admin: AdminDep, store: StoreDep, registry: RegistryDep) -> RolloutPublic:
    """Send `percent` of devices (by stable hash) to `version`; 100 makes it the stable version."""
    known = await registry.get(body.version) is not None
    return public(await apply(store, lambda s: set_rollout(s, body.version, body.percent, known=known)))


@router.post("/rollback")
async def post_rollback(_admin: AdminDep, store: StoreDep) -> RolloutPublic:
    """Cancel the running canary, or else return everyone to the previous stable version."""
    return public(await apply(store, rollback))
