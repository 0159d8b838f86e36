"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from service.edge.app import create_app
from service.edge.config import EdgeSettings
from tests.edge.routes.conftest import metric
from tests.metrics_probe import metrics_growth_after_invented_methods


def test_live_ready_and_model_label(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = {
        "status": "ready",
        "model_version": "tiny-0.0.1",
        "update_stale": False,
        "update_metadata_age_s": None,
        "update_state": "disabled",
        "update_error": None,
    }
    assert client.get("/readyz").json() == ready  # no cloud: nothing to be stale about
    assert metric(client, "eibert_edge_model_info", {"model_version": "tiny-0.0.1", "name": "tiny"}) == 1.0


def test_latency_is_recorded_per_route_template(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/no/such/path/12345")
    text = client.get("/metrics").text
    assert 'route="/healthz"' in text and 'route="unmatched"' in text
    assert "12345" not in text  # raw paths never become labels
    assert metric(client, "eibert_edge_request_seconds_count", {"route": "/healthz", "status": "200"}) >= 1


def test_invented_http_methods_leave_metrics_bounded(client: TestClient) -> None:
    growth, _ = metrics_growth_after_invented_methods(client)
    assert growth < 1000  # only counts grew, no series were added (unbounded: ~1 MB)
    assert metric(client, "eibert_edge_request_seconds_count", {"route": "/healthz", "method": "other"}) >= 1001


def test_not_ready_until_the_lifespan_has_loaded_a_model(tiny_bundle: Path, tmp_path: Path) -> None:
    app = create_app(EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path))
    c = TestClient(app)  # not entered: no lifespan, no model
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not_ready"
    r = c.post("/v1/encode", json={"texts": ["a"]})
    assert r.status_code == 503 and r.json()["error"] == "not_ready"
    with c:
        assert c.get("/readyz").status_code == 200
    assert c.get("/readyz").status_code == 503  # stopped: not ready, with or without a batcher
