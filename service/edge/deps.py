"""FastAPI dependencies as `Annotated` aliases, so route signatures read as types.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, and a thread hop
per dependency costs more than everything else a cached /v1/encode does. The hot routes (/v1/encode,
/v1/embeddings, /v1/rank) skip dependency solving altogether and start with `serving_request` instead.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel

from service.edge.slot import LoadedModel
from service.edge.state import EdgeState
from service.edge.wire import read_json

M = TypeVar("M", bound=BaseModel)


def state_of(request: Request) -> EdgeState:
    return request.app.state.edge


async def get_state(request: Request) -> EdgeState:
    return state_of(request)


StateDep = Annotated[EdgeState, Depends(get_state)]


def serving_model(state: EdgeState) -> LoadedModel:
    """The serving model, read once per request: everything the request does uses this one object."""
    model = state.slot.current
    if model is None or not state.ready:
        raise HTTPException(status_code=503, detail="no model loaded yet")
    return model


async def current_model(state: StateDep) -> LoadedModel:
    return serving_model(state)


ModelDep = Annotated[LoadedModel, Depends(current_model)]


async def serving_request(request: Request, schema: type[M]) -> tuple[M, EdgeState, LoadedModel]:
    """How every hot route starts: its body parsed as `schema` (4xx first), the app's state, the serving model."""
    req = await read_json(request, schema)
    state = state_of(request)
    return req, state, serving_model(state)
