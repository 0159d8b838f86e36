"""One error body on the edge and the cloud: `{"error", "message"}` (+ `errors` on validation), whoever
answers (a route, a dependency, the validation layer, a body-limit middleware)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.cloud import create_app
from service.common.http_errors import ErrorBody
from service.edge.app import create_app as create_edge
from service.edge.config import EdgeSettings
from tests.cloud.conftest import sqlite_settings


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_settings(tmp_path, max_json_bytes=4096))) as client:
        yield client


@pytest.fixture
def edge(tiny_bundle: Path, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_edge(EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path / "e", max_body_bytes=4096))) as c:
        yield c


def assert_error(resp, status: int, code: str) -> ErrorBody:
    assert resp.status_code == status, resp.text
    assert set(resp.json()) <= {"error", "message", "errors"}, resp.json()
    body = ErrorBody.model_validate(resp.json())
    assert body.error == code and body.message
    return body


def test_the_cloud_answers_the_shared_shape(cloud: TestClient) -> None:
    assert_error(cloud.get("/v1/nothing"), 404, "not_found")
    assert_error(cloud.delete("/v1/models"), 405, "method_not_allowed")
    assert_error(cloud.post("/v1/models", content=b"x"), 401, "unauthorized")
    admin = {"Authorization": "Bearer " + "x" * 40}
    assert_error(cloud.post("/v1/models", content=b"x", headers=admin), 403, "forbidden")
    body = assert_error(cloud.post("/v1/devices", json={"device_id": ""}), 422, "invalid_request")
    assert body.errors and body.errors[0].loc == "device_id"
    assert_error(cloud.post("/v1/devices", content=b"{" * 5000), 413, "payload_too_large")
    assert_error(cloud.get("/v1/models/0.0.9"), 404, "UnknownVersionError")


def test_the_edge_answers_the_same_shape(edge: TestClient) -> None:
    assert_error(edge.get("/v1/nothing"), 404, "not_found")
    assert_error(edge.get("/v1/encode"), 405, "method_not_allowed")
    body = assert_error(edge.post("/v1/encode", json={"texts": []}), 422, "invalid_request")
    assert body.errors and body.errors[0].loc == "texts"
    assert_error(edge.post("/v1/encode", content=b"{" * 5000), 413, "payload_too_large")
