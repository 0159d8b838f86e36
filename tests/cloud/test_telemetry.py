"""Telemetry ingest and fleet release over HTTP, on both stores."""

from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.ldp import METRICS, cells_from_reports, encode_report, estimate_metric
from tests.cloud.conftest import enrol, publish

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def cloud(client: TestClient, tiny_archive: bytes) -> tuple[TestClient, str]:
    return client, publish(client, tiny_archive)


def rep(
    version: str,
    *,
    metric: str = "top_genre",
    value: str | bool = "Drama",
    eps: float | None = None,
    day: dt.date = TODAY,
    seed: int = 0,
    mechanism=None,
) -> dict:
    r = encode_report(
        metric,
        value,
        model_version=version,
        day=day.isoformat(),
        epsilon=eps,
        mechanism=mechanism,
        rng=np.random.default_rng(seed),
    )
    return r.model_dump(mode="json")


def test_needs_a_device_token(cloud) -> None:
    client, version = cloud
    body = {"reports": [rep(version)]}
    assert client.post("/v1/telemetry", json=body).status_code == 401
    assert client.post("/v1/telemetry", json=body, headers={"Authorization": "Bearer forged"}).status_code == 401


def test_accepted_duplicate_refused(cloud) -> None:
    client, version = cloud
    h = enrol(client, "phone-1")
    a, b = rep(version, eps=0.5, seed=1), rep(version, eps=0.4, seed=2)
    resp = client.post("/v1/telemetry", json={"reports": [a, b, a]}, headers=h)
    assert resp.status_code == 200
    ack = resp.json()
    assert [r["status"] for r in ack["results"]] == ["accepted", "accepted", "duplicate"]
    assert (ack["accepted"], ack["duplicate"], ack["refused"]) == (2, 1, 0)
    # retrying the whole batch (lost response) double counts nothing
    again = client.post("/v1/telemetry", json={"reports": [a, b]}, headers=h).json()
    assert again["duplicate"] == 2
    over = client.post("/v1/telemetry", json={"reports": [rep(version, eps=0.2, seed=3)]}, headers=h).json()
    assert over["results"][0]["status"] == "refused" and "budget" in over["results"][0]["reason"]
    fits = client.post("/v1/telemetry", json={"reports": [rep(version, eps=0.1, seed=4)]}, headers=h).json()
    assert fits["accepted"] == 1  # 0.5 + 0.4 + 0.1 == 1.0 exactly: integer micro-epsilon, no float drift


def test_refusals_for_day_and_version(cloud) -> None:
    client, version = cloud
    h = enrol(client, "phone-1")
    old = TODAY - dt.timedelta(days=30)
    future = TODAY + dt.timedelta(days=3)
    ack = client.post(
        "/v1/telemetry",
        json={"reports": [rep(version, day=old), rep(version, day=future, seed=1), rep("ghost-9.9", seed=2)]},
        headers=h,
    ).json()
    reasons = [r["reason"] for r in ack["results"]]
    assert ack["refused"] == 3
    assert "window" in reasons[0] and "window" in reasons[1] and "not a registered version" in reasons[2]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(extra="raw text"),
        lambda r: r.update(metric="free_text"),
        lambda r: r.update(mechanism="rr"),
        lambda r: r.update(epsilon=0.123),
        lambda r: r.update(epsilon=9.0),
        lambda r: r.update(day="2025-02-30"),
        lambda r: r.update(report_id="not-a-uuid"),
        lambda r: r.update(payload={"seed": 1, "value": 999}),
        lambda r: r.update(payload={"bits": "1" * 20}),
        lambda r: r.update(payload={"seed": 1, "value": 0, "raw": "Sci-Fi"}),
        lambda r: r.update(model_version="x" * 200),
    ],
    ids=[
        "extra",
        "metric",
        "mechanism",
        "eps-decimals",
        "eps-range",
        "day",
        "id",
        "olh-range",
        "payload-type",
        "payload-extra",
        "version-length",
    ],
)
def test_malformed_reports_are_422(cloud, mutate) -> None:
    client, version = cloud
    h = enrol(client, "phone-1")
    r = rep(version)
    mutate(r)
    resp = client.post("/v1/telemetry", json={"reports": [r]}, headers=h)
    assert resp.status_code == 422, resp.text
    assert resp.json()["message"]


def test_batch_limits(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_reports_per_batch": 3}))) as client:
        version = publish(client, tiny_archive)
        h = enrol(client, "phone-1")
        four = [rep(version, eps=0.01, seed=i) for i in range(4)]
        assert client.post("/v1/telemetry", json={"reports": four}, headers=h).status_code == 413
        assert client.post("/v1/telemetry", json={"reports": []}, headers=h).status_code == 422
        many = [rep(version, eps=0.01, seed=0)] * 501
        assert client.post("/v1/telemetry", json={"reports": many}, headers=h).status_code in (413, 422)


def test_json_body_limit(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_json_bytes": 2048}))) as client:
        h = enrol(client, "phone-1")
        resp = client.post(
            "/v1/telemetry", content=b"{" + b" " * 5000 + b"}", headers={**h, "content-type": "application/json"}
        )
        assert resp.status_code == 413
        assert "limit" in resp.json()["message"]

        def chunks():  # no Content-Length: the streamed size is enforced too
            yield b'{"reports": ['
            for _ in range(10):
                yield b" " * 500

        resp = client.post("/v1/telemetry", content=chunks(), headers={**h, "content-type": "application/json"})
        assert resp.status_code == 413


def test_fleet_release_is_k_min_gated_and_matches_the_estimator(cloud) -> None:
    client, version = cloud  # k_min = 3 in the test settings
    sent = []
    genres = ["Drama", "Comedy", "Drama", "Sci-Fi"]
    for i, genre in enumerate(genres[:2]):
        h = enrol(client, f"phone-{i}")
        r = rep(version, value=genre, seed=10 + i)
        sent.append(r)
        assert client.post("/v1/telemetry", json={"reports": [r]}, headers=h).json()["accepted"] == 1
    (item,) = client.get("/v1/fleet/metrics").json()["data"]
    assert item["status"] == "withheld" and item["estimates"] is None and item["devices"] is None
    assert "k_min=3" in item["reason"]

    for i, genre in enumerate(genres[2:], start=2):
        h = enrol(client, f"phone-{i}")
        # two reports from one device still count as one device for k_min
        rs = [rep(version, value=genre, seed=20 + i), rep(version, value=genre, seed=30 + i, mechanism="oue")]
        sent += rs
        assert client.post("/v1/telemetry", json={"reports": rs}, headers=h).json()["accepted"] == 2
    body = client.get("/v1/fleet/metrics", params={"metric": "top_genre", "day": TODAY.isoformat()}).json()
    (item,) = body["data"]
    assert item["status"] == "released" and item["devices"] == 4 and item["reports"] == 6
    from service.common.ldp import TelemetryReport

    expected = estimate_metric(
        METRICS["top_genre"], cells_from_reports([TelemetryReport.model_validate(r) for r in sent]).values()
    )
    got = {e["category"]: e for e in item["estimates"]}
    for e in expected:
        assert got[e.category]["estimate"] == pytest.approx(e.estimate, abs=1e-12)
        assert got[e.category]["std_error"] == pytest.approx(e.std_error, abs=1e-12)
        assert 0.0 <= got[e.category]["ci_low"] <= got[e.category]["ci_high"] <= 1.0
    assert client.get("/v1/fleet/metrics", params={"metric": "latency_bucket"}).json()["count"] == 0
    assert client.get("/v1/fleet/metrics", params={"day": "yesterday"}).status_code == 422


def test_report_ids_are_uuid_strings(cloud) -> None:
    client, version = cloud
    h = enrol(client, "phone-1")
    r = rep(version)
    ack = client.post("/v1/telemetry", json={"reports": [r]}, headers=h).json()
    assert ack["results"][0]["report_id"] == str(uuid.UUID(r["report_id"]))
