"""Liveness, readiness and Prometheus metrics, on both stores."""

from __future__ import annotations

import datetime as dt

import numpy as np
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.ldp import encode_report
from tests.cloud.conftest import ADMIN, enrol_offered, publish
from tests.metrics_probe import metrics_growth_after_invented_methods


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["store"]


def test_metrics_export_requests_rollout_and_released_estimates(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"dev_mode": True}))) as client:
        _metrics_after_a_closed_day(client, tiny_archive)


def _metrics_after_a_closed_day(client: TestClient, tiny_archive: bytes) -> None:
    version = publish(client, tiny_archive)
    client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    for i in range(3):  # k_min = 3
        h = enrol_offered(client, f"phone-{i}")
        r = encode_report("top_item_clicked", True, model_version=version, day=day, rng=np.random.default_rng(i))
        client.post("/v1/telemetry", json={"reports": [r.model_dump(mode="json")]}, headers=h)
    open_day = client.get("/metrics").text  # an open group is the admin's business: no count, no estimate
    assert 'status="open"' not in open_day and "eibert_cloud_fleet_estimate{" not in open_day
    assert 'eibert_cloud_fleet_groups{status="released"} 0.0' in open_day
    assert client.post("/v1/clock", json={"advance_days": 2}, headers=ADMIN).status_code == 200  # the day closes
    text = client.get("/metrics").text
    assert 'eibert_cloud_requests_total{method="POST",route="/v1/telemetry",status="200"} 3.0' in text
    assert 'route="/v1/blobs/{sha256}"' not in text  # only routes that were hit
    assert f'eibert_cloud_rollout_version{{role="stable",version="{version}"}} 1.0' in text
    assert 'eibert_cloud_telemetry_reports_total{status="accepted"} 3.0' in text
    assert (
        f'eibert_cloud_fleet_estimate{{bound="estimate",category="clicked",day="{day}",metric="top_item_clicked",'
        f'model_version="{version}"}}' in text
    )
    assert 'eibert_cloud_fleet_groups{status="released"} 1.0' in text


def test_unknown_routes_and_methods_are_clear_4xx(client: TestClient) -> None:
    resp = client.get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["message"]
    assert client.delete("/v1/models").status_code == 405


def test_invented_http_methods_leave_metrics_bounded(client: TestClient) -> None:
    growth, text = metrics_growth_after_invented_methods(client)
    assert growth < 1000  # only counts grew, no series were added (unbounded: ~1 MB)
    assert 'eibert_cloud_requests_total{method="other",route="/healthz",status="405"} 1001.0' in text
