"""Privacy of participation and integrity of estimates (issue 22), attacked from outside over HTTP, on both
stores: who may see which groups, which reports count, and how far one device can move a released estimate."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.common.ldp import (
    METRICS,
    TelemetryReport,
    cells_from_reports,
    encode_report,
    estimate_metric,
    max_report_shift,
    metric_precision,
)
from tests.cloud.conftest import ADMIN, enrol, enrol_offered, enrolment_token, poll, publish, roll_out

TODAY = dt.datetime.now(dt.UTC).date()


def honest(metric: str, value: str | bool, version: str, seed: int) -> dict:
    """A report as a device's encoder makes it: the metric's own mechanism and epsilon."""
    r = encode_report(metric, value, model_version=version, day=TODAY.isoformat(), rng=np.random.default_rng(seed))
    return r.model_dump(mode="json")


def forged(metric: str, version: str, epsilon: float, payload: dict) -> dict:
    """A report no encoder would make: the payload chosen, not drawn."""
    mechanism = {"top_item_clicked": "rr", "latency_bucket": "oue"}[metric]
    return {
        "report_id": str(uuid.uuid4()),
        "metric": metric,
        "mechanism": mechanism,
        "epsilon": epsilon,
        "model_version": version,
        "day": TODAY.isoformat(),
        "payload": payload,
    }


def close_day(client: TestClient) -> None:
    resp = client.post("/v1/clock", json={"advance_days": 2}, headers=ADMIN)  # window 1: today - 2 is closed
    assert resp.status_code == 200, resp.text


def released(client: TestClient, metric: str) -> dict:
    (item,) = client.get("/v1/fleet/metrics", params={"metric": metric}).json()["data"]
    assert item["status"] == "released", item
    return item


def test_an_anonymous_reader_sees_no_open_or_withheld_group(dev_cloud) -> None:
    """Issue 22: one device reports once; an anonymous GET /v1/fleet/metrics listed the open group and
    /metrics counted it (eibert_cloud_fleet_groups{status="open"} 0 -> 1). Now both show nothing of it; the
    admin still sees it, and a wrong token is refused rather than answered as anonymous."""
    client, version = dev_cloud
    h = enrol_offered(client, "phone-1")
    assert client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", version, 1)]}, headers=h)
    anon = client.get("/v1/fleet/metrics").json()
    assert anon["data"] == [] and anon["count"] == 0
    assert 'status="open"' not in client.get("/metrics").text
    admin = client.get("/v1/fleet/metrics", headers=ADMIN).json()
    assert [g["status"] for g in admin["data"]] == ["open"]
    assert client.get("/v1/fleet/metrics", headers={"Authorization": "Bearer wrong-token"}).status_code == 403
    close_day(client)  # one device < k_min = 3: withheld, and still the admin's business only
    assert client.get("/v1/fleet/metrics").json()["data"] == []
    assert 'status="withheld"' not in client.get("/metrics").text
    assert [g["status"] for g in client.get("/v1/fleet/metrics", headers=ADMIN).json()["data"]] == ["withheld"]


def test_one_enrolled_device_among_41_cannot_pin_a_released_estimate(dev_cloud) -> None:
    """Issue 22's attack: one device among 41 sends 50 randomized-response reports `bit=1` and 50 OUE reports
    for one category, each at epsilon 0.01 (its whole daily budget). Today's code accepted all 100 and
    released top_item_clicked[clicked] = 1.0. Now the batch is refused (not the metrics' epsilon), at the right
    epsilon only one report per group counts, and the release moves at most `max_report_shift` from where an
    honest report of that device would have put it."""
    client, version = dev_cloud
    token = enrolment_token(client, max_devices=41)
    sent: list[dict] = []
    for i in range(40):
        h = enrol_offered(client, f"honest-{i}", token)
        reports = [
            honest("top_item_clicked", i % 8 == 0, version, seed=2 * i),
            honest("latency_bucket", "<10ms", version, seed=2 * i + 1),
        ]
        assert client.post("/v1/telemetry", json={"reports": reports}, headers=h).json()["accepted"] == 2
        sent += reports
    h = enrol_offered(client, "attacker", token)
    at_001 = [forged("top_item_clicked", version, 0.01, {"bit": 1}) for _ in range(50)]
    at_001 += [forged("latency_bucket", version, 0.01, {"bits": "00001"}) for _ in range(50)]
    low = client.post("/v1/telemetry", json={"reports": at_001}, headers=h)
    eps = {m: METRICS[m].default_epsilon for m in ("top_item_clicked", "latency_bucket")}
    at_own = [forged("top_item_clicked", version, eps["top_item_clicked"], {"bit": 1}) for _ in range(50)]
    at_own += [forged("latency_bucket", version, eps["latency_bucket"], {"bits": "00001"}) for _ in range(50)]
    own = client.post("/v1/telemetry", json={"reports": at_own}, headers=h)
    close_day(client)

    for metric, category, worst, alternative in (
        ("top_item_clicked", "clicked", {"bit": 1}, {"bit": 0}),
        ("latency_bucket", ">=50ms", {"bits": "00001"}, {"bits": "00000"}),
    ):
        item = released(client, metric)
        spec = METRICS[metric]
        mechanism = spec.mechanisms[0]
        # where one report of the attacker's would have put the estimate, and how far one report can move it
        counterfactual = [TelemetryReport.model_validate(r) for r in sent if r["metric"] == metric]
        counterfactual.append(TelemetryReport.model_validate(forged(metric, version, eps[metric], alternative)))
        cells = list(cells_from_reports(counterfactual).values())
        bound = max_report_shift(mechanism, eps[metric], metric_precision(cells))
        base = {e.category: e for e in estimate_metric(spec, cells)}
        got = {e["category"]: e for e in item["estimates"]}
        for cat in spec.categories:
            assert abs(got[cat]["raw_estimate"] - base[cat].raw_estimate) <= bound + 1e-12, (metric, cat)
            assert abs(got[cat]["estimate"] - base[cat].estimate) <= math.sqrt(spec.d) * bound + 1e-12
        assert got[category]["estimate"] < 1.0  # today's code: pinned at 1.000 (raw 55.9 and 111.7)
        assert item["devices"] == 41 and item["reports"] == 41, item  # the attacker counts once
        # and the worst report really is the attacker's: the one that moved the release
        worst_cells = cells_from_reports([*counterfactual[:-1], TelemetryReport.model_validate(
            forged(metric, version, eps[metric], worst))]).values()  # fmt: skip
        mine = {e.category: e.raw_estimate for e in estimate_metric(spec, worst_cells)}
        assert got[category]["raw_estimate"] == pytest.approx(mine[category], abs=1e-12)
    assert low.status_code == 422 and "epsilon" in low.json()["message"], low.text
    ack = own.json()
    assert (ack["accepted"], ack["refused"]) == (2, 98)
    assert {r["reason"] for r in ack["results"] if r["status"] == "refused"} == {
        "this device already has a report in this (metric, model_version, day) group"
    }


def test_a_report_counts_only_under_a_version_the_device_was_offered(dev_cloud, make_variant) -> None:
    """Issue 22: a device could report under any registered version (and so skew a canary's A/B readout).
    Now only under one the cloud offered it (or assigns it now): a registered version it was never offered is
    refused, and after a rollout moved on, the version it was offered before still counts (its reports from
    before the switch arrive late)."""
    client, stable = dev_cloud
    canary = publish(client, make_variant("9.9.9"))
    fresh = enrol(client, "never-polled")  # not polled yet, but the rollout assigns it the stable version
    ack = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", canary, 1)]}, headers=fresh)
    assert ack.json()["refused"] == 1 and "never offered" in ack.json()["results"][0]["reason"]
    ack = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", stable, 1)]}, headers=fresh)
    assert ack.json()["accepted"] == 1
    h = enrol_offered(client, "phone-1")  # offered the stable version only
    skew = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", canary, 2)]}, headers=h)
    assert skew.json()["refused"] == 1 and "never offered" in skew.json()["results"][0]["reason"]
    own = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", stable, 3)]}, headers=h)
    assert own.json()["accepted"] == 1
    roll_out(client, canary)
    assert poll(client, "phone-1", h) == canary
    later = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Comedy", canary, 4)]}, headers=h)
    assert later.json()["accepted"] == 1
    roll_out(client, stable)  # back: phone-1 was offered the canary once, so its late canary reports still count
    late = honest("latency_bucket", "<5ms", canary, 5)
    assert client.post("/v1/telemetry", json={"reports": [late]}, headers=h).json()["accepted"] == 1
    never = enrol(client, "never-polled-2")  # assigned the stable version again, never offered the canary
    ack = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Drama", canary, 6)]}, headers=never)
    assert ack.json()["refused"] == 1


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_a_report_at_another_epsilon_refuses_the_batch(dev_cloud, metric: str) -> None:
    client, version = dev_cloud
    h = enrol_offered(client, "phone-1")
    spec = METRICS[metric]
    other = round(spec.default_epsilon + 0.01, 2)
    value = spec.categories[0]
    off = encode_report(metric, value, model_version=version, day=TODAY.isoformat(), epsilon=other)
    ok = honest(metric, value, version, 1)
    resp = client.post("/v1/telemetry", json={"reports": [ok, off.model_dump(mode="json")]}, headers=h)
    assert resp.status_code == 422 and f"epsilon {spec.default_epsilon:g}" in resp.json()["message"]
    assert client.post("/v1/telemetry", json={"reports": [ok]}, headers=h).json()["accepted"] == 1


def test_one_report_per_device_and_group_across_batches_and_days(dev_cloud) -> None:
    """A second report into a group is refused, in one batch or a later one, whatever its id; a report for
    another group (another metric, or the other day of the window) still counts."""
    client, version = dev_cloud
    h = enrol_offered(client, "phone-1")
    a, b = honest("top_genre", "Drama", version, 1), honest("top_genre", "Comedy", version, 2)
    first = client.post("/v1/telemetry", json={"reports": [a, b]}, headers=h).json()
    assert [r["status"] for r in first["results"]] == ["accepted", "refused"]
    again = client.post("/v1/telemetry", json={"reports": [honest("top_genre", "Sci-Fi", version, 3)]}, headers=h)
    assert again.json()["refused"] == 1
    assert client.post("/v1/telemetry", json={"reports": [a]}, headers=h).json()["duplicate"] == 1  # a retry
    resp = client.post("/v1/clock", json={"advance_days": 1}, headers=ADMIN)
    assert resp.status_code == 200
    tomorrow = encode_report("top_genre", "Drama", model_version=version, day=resp.json()["today"])
    assert (
        client.post("/v1/telemetry", json={"reports": [tomorrow.model_dump(mode="json")]}, headers=h).json()["accepted"]
        == 1
    )
