"""One thin router per resource; logic lives in registry, rollout, privacy and the store."""

from __future__ import annotations

from service.cloud.routes import clock, devices, enrolment, fleet, health, keys, models, rollout, telemetry

# Registration order is match order: the device polling route (the hottest by far) goes first, then health.
ROUTERS = (
    devices.router,
    health.router,
    telemetry.router,
    models.router,
    rollout.router,
    fleet.router,
    enrolment.router,
    clock.router,
    keys.router,
)

__all__ = ["ROUTERS"]
