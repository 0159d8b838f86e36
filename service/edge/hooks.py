"""The telemetry hook: how the app tells an on-device telemetry client what it served, without raw text.

The client itself (privacy budget, LDP encoders, durable outbox) lives in `service/edge/telemetry.py`
; the app only needs this protocol. `observe` is called on the event loop after every successful
/v1/encode and /v1/rank, so it must be cheap and must not block: queue the event and return. An event carries
counts, a latency and the model version, never a text, an id or an embedding, so nothing private can leak
through this seam whatever the client does with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class EdgeEvent:
    route: str  # "/v1/encode" | "/v1/rank"
    model_version: str  # the release id, `{name}-{version}`, as the cloud knows it
    texts: int  # texts embedded for the request (cache hits included)
    latency_s: float  # handler time, from parsed request to response object
    top_k: int | None = None  # /v1/rank only
    candidates: int | None = None  # /v1/rank only
    behaviors: int | None = None  # /v1/rank only


@runtime_checkable
class TelemetryHook(Protocol):
    async def start(self) -> None:
        """Called once in the app's lifespan, after the model is loaded (e.g. resume the outbox)."""
        ...

    async def stop(self) -> None:
        """Called once at shutdown, before the cloud client closes (e.g. flush the outbox)."""
        ...

    def observe(self, event: EdgeEvent) -> None:
        """Record one served request; must not block or raise (errors are logged and dropped)."""
        ...
