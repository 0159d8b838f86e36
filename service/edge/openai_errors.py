"""OpenAI-shaped error bodies on `POST /v1/embeddings`, so OpenAI's clients show our message.

Every other route answers the project's one error shape, `{"error": code, "message": text}`
(`service/common/http_errors.py`). OpenAI's clients read a different one, `{"error": {"message", "type",
"param", "code"}}`: given ours, the official `openai` client finds no message and shows only "Error code: 404".
So on the OpenAI-compatible route, and only there, every error (the route's own 400/404, a 413 from the body
limit, a 415, a 422 naming the field, a 429 from load shedding, a 503) is rewritten into OpenAI's shape by this
pure ASGI middleware. It sits outside the body limit, so nothing that route can answer escapes it; it buffers
only error bodies, which the shared handlers keep small (at most `MAX_FIELD_ERRORS` entries, no input echoed).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPENAI_PATHS = frozenset({"/v1/embeddings"})
MAX_ERROR_BODY = 64 * 1024  # the shared handlers' bodies are a few hundred bytes; anything bigger passes as is

OpenAIErrorType = Literal["invalid_request_error", "rate_limit_error", "server_error"]


class OpenAIError(BaseModel):
    message: str  # what was wrong, for a person: the same text the shared body's `message` carries
    type: OpenAIErrorType  # invalid_request_error (4xx), rate_limit_error (429), server_error (5xx)
    param: str | None = None  # the request field at fault (`input`, `model`, `dimensions`, ...), when one is
    code: str | None = None  # the shared body's machine-readable code (`model_not_found` for an unknown model)


class OpenAIErrorBody(BaseModel):
    """Every error response of `POST /v1/embeddings`."""

    error: OpenAIError


def openai_error_response(status: int, message: str, *, param: str | None = None, code: str | None = None) -> Response:
    """A refusal the route words itself, already in OpenAI's shape (the middleware passes it through)."""
    body = OpenAIErrorBody(error=OpenAIError(message=message, type=error_type(status), param=param, code=code))
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


class OpenAIRefusal(Exception):
    """A refusal a route words itself (with the parameter at fault): raised anywhere on the route's path, the
    handler `install_openai_refusals` registers answers it in OpenAI's shape, for the lean layer too."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> Response:
        return openai_error_response(self.status, self.message, param=self.param, code=self.code)


def install_openai_refusals(app: Any) -> None:
    async def handle(_request: Any, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIRefusal)
        return exc.response()

    app.add_exception_handler(OpenAIRefusal, handle)


def error_type(status: int) -> OpenAIErrorType:
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error(status: int, shared: dict) -> OpenAIErrorBody:
    """The shared body `{"error", "message", "errors"?}` in OpenAI's shape."""
    fields = shared.get("errors") or []
    param = str(fields[0].get("loc", "")).split(".")[0] or None if fields else None
    code = str(shared.get("error") or "") or None
    message = str(shared.get("message") or "") or f"HTTP {status}"
    return OpenAIErrorBody(error=OpenAIError(message=message, type=error_type(status), param=param, code=code))


class OpenAIErrors:
    """Rewrite error responses of the routes in `paths` into OpenAI's error shape."""

    def __init__(self, app: ASGIApp, *, paths: frozenset[str] = OPENAI_PATHS) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/") not in self.paths:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                    return
                start = message  # held back until the body is known
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, body = start["status"], b"".join(chunks)
            dropped = (b"content-length", b"content-type")
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
            new = _rewritten(status, body)
            if new is not None:
                body = new
                headers.append((b"content-type", b"application/json"))
            else:
                headers.extend((k, v) for k, v in start.get("headers", []) if k.lower() == b"content-type")
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewriting_send)


def _rewritten(status: int, body: bytes) -> bytes | None:
    """The OpenAI-shaped body, or None when `body` is not a shared error body (then it passes unchanged)."""
    if len(body) > MAX_ERROR_BODY:
        return None
    try:
        shared = json.loads(body)
    except ValueError:
        return None
    if not isinstance(shared, dict) or not isinstance(shared.get("error"), str):
        return None
    return openai_error(status, shared).model_dump_json().encode()
