"""FastAPI dependencies as `Annotated` aliases, so route signatures read as types.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, and a thread hop
per dependency costs more than everything else a cached /v1/encode does.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from service.edge.slot import LoadedModel
from service.edge.state import EdgeState


async def get_state(request: Request) -> EdgeState:
    return request.app.state.edge


StateDep = Annotated[EdgeState, Depends(get_state)]


async def current_model(state: StateDep) -> LoadedModel:
    """The serving model, read once per request: everything the request does uses this one object."""
    model = state.slot.current
    if model is None or not state.ready:
        raise HTTPException(status_code=503, detail="no model loaded yet")
    return model


ModelDep = Annotated[LoadedModel, Depends(current_model)]
