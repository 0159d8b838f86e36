"""A second release rolled out during a fleet run: publish it, canary to 10%, then 100%.

`eibert demo` and `eibert simulate --rollout-bundle DIR` (the compose stack's simulator) tell the same story: the
fleet starts on one release and, at fixed points of the run, the operator publishes the next one, sends 10% of
devices to it and then everyone, so the summary has a rollout and an A/B readout to show. The hours are fixed
fractions of the run, so a short run still has a canary phase of several simulated hours.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.common.cloud_admin import CloudAdmin, publish_bundle
from simulators.fleet import ScheduledEvent

CANARY_PERCENT = 10


def rollout_hours(days: int) -> tuple[int, int]:
    """(hour of the canary, hour of the full rollout) in a run of `days` simulated days."""
    hours = days * 24
    canary_at = max(2, int(hours * 0.3))
    return canary_at, max(canary_at + 4, int(hours * 0.6))


def rollout_events(cloud_url: str, admin_token: str, bundle: Path, days: int) -> list[ScheduledEvent]:
    """Publish `bundle` and roll it out 10% -> 100% at `rollout_hours(days)`, with the operator's client."""
    canary_at, full_at = rollout_hours(days)
    version: list[str] = []

    def set_rollout(percent: int) -> str:
        with CloudAdmin(cloud_url, admin_token) as admin:
            state = admin.set_rollout(version[0], percent)
        return f"rollout: {version[0]} to {percent}% (stable {state['stable']}, candidate {state['candidate']})"

    async def canary() -> str:
        body = await asyncio.to_thread(publish_bundle, bundle, cloud_url, admin_token)
        version.append(str(body["version"]))
        return f"published {version[0]}; " + await asyncio.to_thread(set_rollout, CANARY_PERCENT)

    async def full() -> str:
        return await asyncio.to_thread(set_rollout, 100)

    return [ScheduledEvent(canary_at, canary), ScheduledEvent(full_at, full)]
