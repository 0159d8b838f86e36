"""GET /healthz of both apps. Liveness is the same everywhere (the process answers, nothing else is touched);
readiness (/readyz) stays each app's own, since it checks what that app needs in order to serve."""

from __future__ import annotations


async def healthz() -> dict[str, str]:
    """Live: the process answers. Also the no-op baseline of the cloud's resolve-path benchmark."""
    return {"status": "ok"}
