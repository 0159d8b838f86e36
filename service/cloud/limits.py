"""Request body size limits, enforced before any route reads the body (pure ASGI, so it also covers bodies
sent without Content-Length, i.e. chunked)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.common.http_errors import error_response


class BodySizeLimit:
    """413 for a body larger than its route's limit: `upload_limit` for POST /v1/models, else `json_limit`."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    def limit_for(self, scope: Scope) -> int:
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") == "/v1/models":
            return self.upload_limit
        return self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(scope, receive, send, 400, "Content-Length is not a number")
                    return
                if declared > limit:
                    await _reply(scope, receive, send, 413, f"request body is {declared} bytes; the limit is {limit}")
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises HTTPException from body reading; the exception middleware answers 413
                    raise HTTPException(413, f"request body exceeds the limit of {limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    code = "payload_too_large" if status == 413 else "bad_request"
    await error_response(status, code, message)(scope, receive, send)
