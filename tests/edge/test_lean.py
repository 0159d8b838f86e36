"""The lean layer: the hot POSTs are answered without the framework's routing and request handling, yet keep
their OpenAPI entry, their metrics label, the body limit and the app's own error answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.edge.app import create_app
from service.edge.config import EdgeSettings
from service.edge.lean import LeanRoute, LeanRoutes
from tests.edge.routes.conftest import metric


@pytest.fixture(scope="module")
def client(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path_factory.mktemp("lean"), max_body_bytes=4096)
    with TestClient(create_app(settings)) as c:
        yield c


def _spy_on_the_router(client: TestClient) -> list[str]:
    """Record every request that reaches the app inside the lean layer (Starlette's exception middleware and
    router): the lean paths must not."""
    reached: list[str] = []
    stack = client.app.middleware_stack
    while not isinstance(stack, LeanRoutes):
        stack = stack.app
    inner = stack.app

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reached.append(f"{scope['method']} {scope['path']}")
        await inner(scope, receive, send)

    stack.app = spy
    return reached


def test_the_hot_posts_skip_the_router_and_everything_else_reaches_it(client: TestClient) -> None:
    reached = _spy_on_the_router(client)
    assert client.post("/v1/encode", json={"texts": ["a film"]}).status_code == 200
    body = {"input": "a film", "model": client.get("/v1/model").json()["name"]}
    assert client.post("/v1/embeddings", json=body).status_code == 200
    assert client.get("/v1/encode").status_code == 405  # other methods: the documented route's answer
    assert reached == ["GET /v1/model", "GET /v1/encode"]


def test_lean_answers_keep_the_metrics_label_and_the_error_shapes(client: TestClient) -> None:
    labels = {"route": "/v1/encode", "method": "POST", "status": "200"}
    before = metric(client, "eibert_edge_request_seconds_count", labels)
    client.post("/v1/encode", json={"texts": ["x"]})
    assert metric(client, "eibert_edge_request_seconds_count", labels) == before + 1
    bad = client.post("/v1/encode", json={"texts": []})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    plain = client.post("/v1/encode", content=b'{"texts": ["x"]}', headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["message"]
    big = client.post("/v1/encode", json={"texts": ["x" * 5000]})
    assert big.status_code == 413  # the body limit outside the lean layer still holds
    wrong_model = client.post("/v1/embeddings", json={"input": "x", "model": "someone-else"})
    error = wrong_model.json()["error"]  # OpenAI's shape on the OpenAI route, from the lean path too
    assert wrong_model.status_code == 404 and "is not served here" in error["message"] and error["param"] == "model"


def test_the_lean_paths_stay_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/encode", "/v1/embeddings"):
        assert "requestBody" in paths[path]["post"] and "422" in paths[path]["post"]["responses"]


def test_a_lean_route_must_be_documented() -> None:
    router = APIRouter()

    async def handler(_state: object, _body: bytes, _content_type: str | None) -> bytes:
        return b"{}"

    with pytest.raises(ValueError, match="documents no POST /v1/hidden"):
        LeanRoute("/v1/hidden", handler, router).documented()
    router.add_api_route("/v1/shown", lambda: {}, methods=["POST"], include_in_schema=False)
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(ValueError, match="missing from the OpenAPI document"):
        LeanRoutes(app, fastapi_app=app, routes=[LeanRoute("/v1/shown", handler, router)])


def test_an_exception_no_handler_takes_propagates() -> None:
    """Not swallowed: the server-error middleware outside answers it as a 500, as for any route."""
    router = APIRouter()
    router.add_api_route("/v1/boom", lambda: {}, methods=["POST"])
    app = FastAPI()
    app.include_router(router)
    app.state.edge = None

    async def boom(_state: object, _body: bytes, _content_type: str | None) -> bytes:
        raise KeyError("boom")

    lean = LeanRoutes(app, fastapi_app=app, routes=[LeanRoute("/v1/boom", boom, router)])
    scope = {"type": "http", "method": "POST", "path": "/v1/boom", "headers": []}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(_message: dict) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(lean(scope, receive, send))
