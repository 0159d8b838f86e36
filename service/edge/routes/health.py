"""Liveness (/healthz: the process answers), readiness (/readyz: a model is loaded and serving, and a node with a
cloud was not refused enrolment), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from service.common.http_errors import error_body
from service.common.liveness import healthz
from service.edge.deps import StateDep

router = APIRouter(tags=["health"])
router.add_api_route("/healthz", healthz, methods=["GET"])


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    model = state.slot.current
    if not state.ready or model is None:
        return JSONResponse(
            status_code=503, content={"status": "not_ready", **error_body("not_ready", "no model loaded yet")}
        )
    refused = state.update_status.enrolment_refused
    if refused is not None:  # it serves, but it will never follow a rollout: an operator has to act
        return JSONResponse(
            status_code=503,
            content={
                "status": "not_ready",
                "model_version": model.release_id,
                **error_body("enrolment_refused", refused),
            },
        )
    # Still 200 when stale: the model serves correctly, it is the update channel that cannot vouch for it.
    update = state.update_status.public()
    return JSONResponse(
        content={
            "status": "ready",
            "model_version": model.release_id,
            "update_stale": update.stale,
            "update_state": update.state,  # `trust_lost`: the node refuses every offer until an operator recovers it
            "update_error": update.last_error,
            "update_metadata_age_s": update.metadata_age_s,
        }
    )


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(content=body, media_type=content_type)
