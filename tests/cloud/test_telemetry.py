"""Telemetry ingest and fleet release over HTTP, on both stores."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.ldp import METRICS, cells_from_reports, encode_report, estimate_metric
from tests.cloud.conftest import ADMIN, enrol_offered, enrolment_token, poll, publish, roll_out

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def cloud(client: TestClient, tiny_archive: bytes) -> tuple[TestClient, str]:
    version = publish(client, tiny_archive)
    roll_out(client, version)
    return client, version


def second_version(client: TestClient, make_variant, headers: dict[str, str], device: str = "phone-1") -> str:
    """Roll out another version and let the device poll it: it may now report under both."""
    version = publish(client, make_variant("2.0.0"))
    roll_out(client, version)
    assert poll(client, device, headers) == version
    return version


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


def test_accepted_duplicate_refused(cloud, make_variant) -> None:
    client, version = cloud
    h = enrol_offered(client, "phone-1")
    a, b = rep(version, seed=1), rep(version, metric="latency_bucket", value="<5ms", seed=2)
    resp = client.post("/v1/telemetry", json={"reports": [a, b, a]}, headers=h)
    assert resp.status_code == 200
    ack = resp.json()
    assert [r["status"] for r in ack["results"]] == ["accepted", "accepted", "duplicate"]
    assert (ack["accepted"], ack["duplicate"], ack["refused"]) == (2, 1, 0)
    # retrying the whole batch (lost response) double counts nothing
    again = client.post("/v1/telemetry", json={"reports": [a, b]}, headers=h).json()
    assert again["duplicate"] == 2
    fits = client.post("/v1/telemetry", json={"reports": [rep(version, metric="top_item_clicked", value=True)]},
                       headers=h).json()  # fmt: skip
    assert fits["accepted"] == 1  # 0.3 + 0.3 + 0.4 == 1.0 exactly: integer micro-epsilon, no float drift
    # a second offered version has groups of its own, but the server day's budget is spent
    other = second_version(client, make_variant, h)
    over = client.post("/v1/telemetry", json={"reports": [rep(other, seed=3)]}, headers=h).json()
    assert over["results"][0]["status"] == "refused" and "budget" in over["results"][0]["reason"]


def test_refusals_for_day_and_version(cloud) -> None:
    client, version = cloud
    h = enrol_offered(client, "phone-1")
    old = TODAY - dt.timedelta(days=30)
    future = TODAY + dt.timedelta(days=3)
    ack = client.post(
        "/v1/telemetry",
        json={"reports": [rep(version, day=old), rep(version, day=future, seed=1), rep("ghost-9.9", seed=2)]},
        headers=h,
    ).json()
    reasons = [r["reason"] for r in ack["results"]]
    assert ack["refused"] == 3
    assert "window" in reasons[0] and "window" in reasons[1] and "never offered" in reasons[2]


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
    h = enrol_offered(client, "phone-1")
    r = rep(version)
    mutate(r)
    resp = client.post("/v1/telemetry", json={"reports": [r]}, headers=h)
    assert resp.status_code == 422, resp.text
    assert resp.json()["message"]


def test_batch_limits(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_reports_per_batch": 3}))) as client:
        version = publish(client, tiny_archive)
        roll_out(client, version)
        h = enrol_offered(client, "phone-1")
        four = [rep(version, eps=0.01, seed=i) for i in range(4)]
        assert client.post("/v1/telemetry", json={"reports": four}, headers=h).status_code == 413
        assert client.post("/v1/telemetry", json={"reports": []}, headers=h).status_code == 422
        many = [rep(version, eps=0.01, seed=0)] * 501
        assert client.post("/v1/telemetry", json={"reports": many}, headers=h).status_code in (413, 422)


def test_json_body_limit(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_json_bytes": 2048}))) as client:
        roll_out(client, publish(client, tiny_archive))
        h = enrol_offered(client, "phone-1")
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


def advance(client: TestClient, days: int) -> dict:
    resp = client.post("/v1/clock", json={"advance_days": days}, headers=ADMIN)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_fleet_release_is_k_min_gated_and_matches_the_estimator(dev_cloud) -> None:
    client, version = dev_cloud  # k_min = 3 in the test settings
    sent = []
    genres = ["Drama", "Comedy", "Drama", "Sci-Fi"]
    for i, genre in enumerate(genres):
        h = enrol_offered(client, f"phone-{i}")
        # one report per device and group; two mechanisms, so the release pools two cells
        rs = [rep(version, value=genre, seed=20 + i, mechanism="oue" if i % 2 else "olh")]
        sent += rs
        assert client.post("/v1/telemetry", json={"reports": rs}, headers=h).json()["accepted"] == 1
    (item,) = client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"]
    assert item["status"] == "open" and item["estimates"] is None and item["devices"] is None
    advance(client, 2)  # today - 2 is outside the 1-day window: closed
    body = client.get("/v1/fleet/metrics", params={"metric": "top_genre", "day": TODAY.isoformat()}).json()
    (item,) = body["data"]
    assert item["status"] == "released" and item["devices"] == 4 and item["reports"] == 4
    from service.common.ldp import TelemetryReport

    expected = estimate_metric(
        METRICS["top_genre"], cells_from_reports([TelemetryReport.model_validate(r) for r in sent]).values()
    )
    got = {e["category"]: e for e in item["estimates"]}
    for e in expected:
        assert got[e.category]["estimate"] == pytest.approx(e.estimate, abs=1e-12)
        assert got[e.category]["std_error"] == pytest.approx(e.std_error, abs=1e-12)
        assert got[e.category]["raw_estimate"] == pytest.approx(e.raw_estimate, abs=1e-12)  # for analysts
        assert 0.0 <= got[e.category]["ci_low"] <= got[e.category]["estimate"] <= got[e.category]["ci_high"] <= 1.0
    assert sum(e["estimate"] for e in item["estimates"]) == pytest.approx(1.0, abs=1e-9)  # consistent (Norm-Sub)
    assert any(not 0.0 <= e["raw_estimate"] <= 1.0 for e in item["estimates"])  # 4 reports: raw ones stray
    assert client.get("/v1/fleet/metrics", params={"metric": "latency_bucket"}).json()["count"] == 0
    assert client.get("/v1/fleet/metrics", params={"day": "yesterday"}).status_code == 422


def test_a_closed_group_below_k_min_stays_withheld(dev_cloud) -> None:
    client, version = dev_cloud
    for i in range(2):
        h = enrol_offered(client, f"phone-{i}")
        assert client.post("/v1/telemetry", json={"reports": [rep(version, seed=i)]}, headers=h).json()["accepted"]
    advance(client, 2)
    assert client.get("/v1/fleet/metrics").json()["data"] == []  # the admin's business only
    (item,) = client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"]
    assert item["status"] == "withheld" and "k_min=3" in item["reason"] and item["devices"] is None


def test_victim_and_sybils_get_one_immutable_release_after_close(dev_cloud, settings: Settings) -> None:
    """Issue 11: with k_min = 5, one victim + 4 sybils were released at once, and two successive releases
    differed by exactly one new device's report. Now: nothing while the day is open; one release after it
    closes; later reads (any replica) return exactly it, and late reports for the day are refused."""
    client, version = dev_cloud
    token = enrolment_token(client, max_devices=10)
    heads = [enrol_offered(client, f"dev-{i}", token) for i in range(6)]
    for i, h in enumerate(heads[:4]):  # the victim and 3 of the sybils
        body = {"reports": [rep(version, metric="latency_bucket", value="<5ms", seed=i, mechanism="oue")]}
        assert client.post("/v1/telemetry", json=body, headers=h).json()["accepted"] == 1
    first = client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"]
    assert [g["status"] for g in first] == ["open"] and first[0]["devices"] is None
    late = {"reports": [rep(version, metric="latency_bucket", value="<5ms", seed=4, mechanism="oue")]}
    assert client.post("/v1/telemetry", json=late, headers=heads[4]).json()["accepted"] == 1
    second = client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"]
    assert second[0]["status"] == "open" and second[0]["estimates"] is None  # nothing to difference
    advance(client, 1)  # yesterday: still inside the window, still open
    assert client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"][0]["status"] == "open"
    advance(client, 1)
    released = client.get("/v1/fleet/metrics").text
    (item,) = client.get("/v1/fleet/metrics").json()["data"]
    assert item["status"] == "released" and item["devices"] == 5
    after = {"reports": [rep(version, metric="latency_bucket", value="<5ms", seed=5, mechanism="oue")]}
    ack = client.post("/v1/telemetry", json=after, headers=heads[5]).json()
    assert ack["refused"] == 1 and "window" in ack["results"][0]["reason"]
    assert client.get("/v1/fleet/metrics").text == released
    # another replica on the same store, even one configured with another k_min, shows the same snapshot
    other = settings.model_copy(update={"dev_mode": True, "k_min": 50})
    with TestClient(create_app(other)) as replica:
        assert replica.get("/v1/fleet/metrics").json()["data"] == json.loads(released)["data"]


def test_day_label_spree_is_charged_to_one_server_day(cloud, make_variant) -> None:
    """Issue 11: one device, one real day, two reports labelled with each of today-7 ... today+1: 18 x 0.4 =
    7.2 epsilon were accepted against a daily budget of 1.0. Now at most 1.0 is, whatever the labels."""
    client, version = cloud
    h = enrol_offered(client, "phone-1")
    other = second_version(client, make_variant, h)
    days = [TODAY + dt.timedelta(days=d) for d in range(-7, 2)]
    click = {"metric": "top_item_clicked", "value": True}
    reports = [
        rep(v, day=d, seed=10 * i + k, **click) for i, d in enumerate(days) for k, v in enumerate((version, other))
    ]
    ack = client.post("/v1/telemetry", json={"reports": reports}, headers=h).json()
    assert ack["accepted"] == 2 and ack["refused"] == 16  # 2 x 0.4 <= 1.0 < 3 x 0.4
    reasons = [r["reason"] or "" for r in ack["results"]]
    assert sum("window" in r for r in reasons) == 14 and sum("budget" in r for r in reasons) == 2
    # what is left of the server day's budget (0.2) takes no more report, whatever it is labelled
    more = [rep(v, day=TODAY, seed=900 + k) for k, v in enumerate((version, other))]
    assert client.post("/v1/telemetry", json={"reports": more}, headers=h).json()["accepted"] == 0


def test_yesterdays_reports_arrive_today_but_never_on_a_second_budget(dev_cloud, make_variant) -> None:
    """A report queued offline yesterday is accepted today (the window), charged on today's budget; and a
    day's groups never hold more than one budget from one device, on however many server days it sends."""
    client, version = dev_cloud
    h = enrol_offered(client, "phone-1")
    spend_all = [rep(version, metric=m, value=METRICS[m].categories[0], seed=i) for i, m in enumerate(METRICS)]
    assert client.post("/v1/telemetry", json={"reports": spend_all}, headers=h).json()["accepted"] == 3  # 1.0
    today = dt.date.fromisoformat(advance(client, 1)["today"])  # the next server day: a fresh budget
    yesterday = today - dt.timedelta(days=1)
    other = second_version(client, make_variant, h)
    again = client.post("/v1/telemetry", json={"reports": [rep(other, day=yesterday, seed=3)]}, headers=h)
    assert again.json()["refused"] == 1 and "budget" in again.json()["results"][0]["reason"]
    fresh = client.post("/v1/telemetry", json={"reports": [rep(other, day=today, seed=4)]}, headers=h)
    assert fresh.json()["accepted"] == 1


def test_report_id_resent_with_another_day_is_a_duplicate(cloud) -> None:
    """Issue 11: a report id re-sent with another day was a duplicate on SQLite and counted twice on Redis."""
    client, version = cloud
    h = enrol_offered(client, "phone-1")
    original = rep(version, seed=1)
    relabelled = {**original, "day": (TODAY - dt.timedelta(days=1)).isoformat()}
    assert client.post("/v1/telemetry", json={"reports": [original]}, headers=h).json()["accepted"] == 1
    ack = client.post("/v1/telemetry", json={"reports": [relabelled]}, headers=h).json()
    assert ack["duplicate"] == 1 and ack["accepted"] == 0


def test_report_ids_are_uuid_strings(cloud) -> None:
    client, version = cloud
    h = enrol_offered(client, "phone-1")
    r = rep(version)
    ack = client.post("/v1/telemetry", json={"reports": [r]}, headers=h).json()
    assert ack["results"][0]["report_id"] == str(uuid.UUID(r["report_id"]))
