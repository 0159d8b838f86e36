"""The one body-limit middleware of both apps: declared and streamed bodies over the limit are a 413 in the
shared error shape, a listed route gets its own limit, a bad Content-Length is a 400."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from service.common.body_limit import BodyLimit
from service.common.http_errors import install_error_handlers


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app, {})

    @app.post("/small")
    @app.post("/upload")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimit, max_bytes=10, routes={("POST", "/upload"): 100})
    with TestClient(app) as c:
        yield c


def _chunks(n: int) -> Iterator[bytes]:
    yield from (b"x" for _ in range(n))  # no Content-Length: the body is sent chunked


def test_within_the_limit_passes(client: TestClient) -> None:
    assert client.post("/small", content=b"x" * 10).json() == {"bytes": 10}
    assert client.post("/upload", content=b"x" * 100).json() == {"bytes": 100}
    assert client.post("/upload/", content=b"x" * 100).status_code != 413  # the trailing slash names the route too


@pytest.mark.parametrize(("path", "size"), [("/small", 11), ("/upload", 101)])
def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient, path: str, size: int) -> None:
    resp = client.post(path, content=b"x" * size)
    assert resp.status_code == 413
    assert resp.json() == {
        "error": "payload_too_large",
        "message": f"request body is {size} bytes; the limit is {size - 1}",
    }


def test_a_streamed_body_is_counted(client: TestClient) -> None:
    resp = client.post("/small", content=_chunks(11))
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
    assert client.post("/small", content=_chunks(10)).json() == {"bytes": 10}


@pytest.mark.parametrize("declared", ["many", "-5", "+1", " 1 ", "1_0"])  # int() takes all but the first
def test_a_bad_content_length_is_a_400(client: TestClient, declared: str) -> None:
    resp = client.post("/small", content=b"x", headers={"Content-Length": declared})
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"
