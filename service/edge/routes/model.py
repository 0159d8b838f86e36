"""GET /v1/model: what this node serves, what it served before, and how its last update went."""

from __future__ import annotations

from fastapi import APIRouter

from service.common.contract import MODEL_FILE
from service.edge.deps import ModelDep, StateDep
from service.edge.schemas import ServingModelPublic

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model")
async def model_info(model: ModelDep, state: StateDep) -> ServingModelPublic:
    m = model.manifest
    return ServingModelPublic(
        version=model.release_id,
        name=m.name,
        manifest_version=m.version,
        dim=m.dim,
        max_length=m.max_length,
        teacher=m.teacher,
        created=m.created,
        model_sha256=model.encoder.model_sha256,
        model_bytes=m.files[MODEL_FILE].bytes,
        loaded_at=model.loaded_at,
        source=model.source.name,  # the bundle's directory name: a client has no business with host paths
        previous_version=state.slot.previous_version,
        update=state.update_status.public(),
    )
