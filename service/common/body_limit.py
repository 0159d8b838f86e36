"""Refuse oversized request bodies before they are buffered and parsed: one pure ASGI middleware for both apps.

pydantic's bounds price a valid request only after its whole body has been read and decoded; this bounds the
bytes read first, by Content-Length when given and by counting chunks otherwise (a chunked body declares no
length). Each app passes its own limits: one for every route, larger ones for named routes (the cloud's
bundle upload). Refusals are the shared error body of `service.common.http_errors`.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.common.http_errors import error_response, http_code


class _TooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reader re-raises it as is (it turns other errors into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds the limit of {limit} bytes")


class BodyLimit:
    """413 for a body over its route's limit: `routes[(method, path)]` where listed, else `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, routes: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})  # paths without a trailing slash, so `/v1/models/` is `/v1/models`

    def limit_for(self, scope: Scope) -> int:
        key = (scope.get("method", ""), scope.get("path", "").rstrip("/"))
        return self.routes.get(key, self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():  # int() would also take "-5", "+12", " 12 " and "1_000"
                    await _reply(scope, receive, send, 400, "Content-Length is not a number")
                    return
                declared = int(value)
                if declared > limit:
                    await _reply(scope, receive, send, 413, f"request body is {declared} bytes; the limit is {limit}")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)  # the app's HTTPException handler answers it in the shared shape
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge as exc:  # read outside a handler (no app around it answered): answer it here
            if started:  # pragma: no cover - handlers read the body before responding
                raise
            await _reply(scope, receive, send, 413, str(exc.detail))


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    await error_response(status, http_code(status), message)(scope, receive, send)
