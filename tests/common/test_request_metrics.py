"""The one request-metrics middleware of both apps: one observation per request, labelled by route template
(never the raw path), a standard method and status, and a 500 for a request that raised."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.common.request_metrics import UNMATCHED, RequestMetrics


def test_each_request_is_observed_by_template() -> None:
    seen: list[tuple[str, str, str, float]] = []
    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        return {"item": item}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(RequestMetrics, observe=lambda *labels: seen.append(labels))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/items/secret-id")
        client.get("/nowhere")
        client.request("BREW", "/items/x")
        with pytest.raises(RuntimeError):
            TestClient(app).get("/boom")
    labels = [s[:3] for s in seen]
    assert labels[:3] == [("/items/{item}", "GET", "200"), (UNMATCHED, "GET", "404"), ("/items/{item}", "other", "405")]
    assert labels[3] == ("/boom", "GET", "500")
    assert all(s[3] >= 0 for s in seen)
