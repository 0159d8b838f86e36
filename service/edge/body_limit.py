"""Refuse oversized request bodies with 413 before they are buffered and parsed.

The pydantic limits bound what a valid request costs, but only after the whole body has been read and
decoded; this bounds the bytes read first, by Content-Length when given and by counting chunks otherwise.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException

from service.common.http_errors import error_response
from service.edge.metrics import ASGIApp, Message, Scope


class _TooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader re-raises it as is (it turns other errors into a 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {max_bytes} bytes")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:  # pragma: no cover - handlers read the body before responding
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive, send) -> None:
        message = f"request body exceeds {self.max_bytes} bytes"
        await error_response(413, "payload_too_large", message)(scope, receive, send)
