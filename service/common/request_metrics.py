"""Time every HTTP request by route template: one pure ASGI middleware (cheaper than BaseHTTPMiddleware) for
both apps, each recording into its own metrics and registry through `observe`.

Labels come from fixed sets (the route template such as `/v1/encode`, never the raw path, else `unmatched`; a
standard method and status code, else `other`), so a scanner cannot explode label cardinality.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.common.http_labels import method_label, status_label

UNMATCHED = "unmatched"  # the route label of a request no route matched (404s of scanners, typos)

# (route template, method label, status label, seconds)
Observe = Callable[[str, str, str, float], None]


class RequestMetrics:
    """Calls `observe` once per HTTP request, after the response (or the error that ended it: a 500)."""

    def __init__(self, app: ASGIApp, *, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.observe(route, method_label(scope.get("method")), status_label(status), time.perf_counter() - start)
