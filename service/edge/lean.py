"""Lean routes: the hot POST endpoints answered straight from ASGI, at the cost of the model and little else.

With a model this small (about 0.1 ms a short text), the framework path around it decides what a request
costs: Starlette's routing over every route, FastAPI's request handler (dependency solving, its exit stacks,
the `Request` and `Response` objects) and the exception middleware cost several times what GET /healthz does.
`LeanRoutes` is a pure ASGI middleware that answers `POST <path>` for the paths it is given with the route's
`LeanHandler`: it reads the body (still bounded by `BodyLimit` outside it), the handler parses and validates
it from its bytes with the route's pydantic model and returns the finished JSON bytes, and the middleware
sends them. Everything else passes through to the app untouched.

Nothing is given up. The FastAPI route for the same path stays registered: the OpenAPI document is built from
it (request and response models, every status), other methods get its 405, and `scope["route"]` is set to it
so `RequestMetrics` labels the request as before. A handler's exception is answered by the app's own
exception handlers (`service.common.http_errors`: the shared error body, 415/422/404/429/503 as on every
route); one none of them takes propagates to the server-error middleware outside, a 500 as before.

A route opts in by exporting a `LeanRoute(path, handler)`; `create_app` lists them (/v1/encode and
/v1/embeddings; /v1/rank can join the same way).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.edge.state import EdgeState

# (the app's state, the raw body, its Content-Type header or None) -> the 200 answer's JSON bytes
LeanHandler = Callable[[EdgeState, bytes, str | None], Awaitable[bytes]]
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class LeanRoute:
    path: str  # exactly as the FastAPI route is registered, e.g. "/v1/encode"
    handler: LeanHandler
    router: APIRouter  # the router that documents `POST path` (its route labels the request in metrics)

    def documented(self) -> BaseRoute:
        for route in self.router.routes:
            if getattr(route, "path", None) == self.path and "POST" in getattr(route, "methods", ()):
                return route
        raise ValueError(f"lean route {self.path}: its router documents no POST {self.path}")


async def read_body(receive: Receive) -> bytes:
    """The whole request body, as Starlette's `Request.body()` reads it (a disconnect ends the request)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_type(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1")
    return None


class LeanRoutes:
    """Answers `POST` on the lean paths; passes every other request to `app`."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, routes: Sequence[LeanRoute]) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.handlers: Mapping[str, LeanHandler] = {r.path: r.handler for r in routes}
        self.routes: Mapping[str, BaseRoute] = {r.path: r.documented() for r in routes}
        paths = fastapi_app.openapi()["paths"]
        missing = sorted(p for p in self.handlers if "post" not in paths.get(p, {}))
        if missing:  # a lean path must stay in the OpenAPI document: refuse to build an app that hides one
            raise ValueError(f"lean routes missing from the OpenAPI document: {missing}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.handlers.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.routes[scope["path"]]  # what the router would have set: RequestMetrics' label
        try:
            body = await handler(self.fastapi_app.state.edge, await read_body(receive), _content_type(scope))
        except Exception as exc:
            await self._answer_error(scope, receive, send, exc)
            return
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer_error(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """The app's own handler for `exc` (by its class's MRO, as Starlette looks one up), else re-raise."""
        handlers = self.fastapi_app.exception_handlers
        handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
        if handler is None:
            raise exc
        request = Request(scope, receive)
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)
