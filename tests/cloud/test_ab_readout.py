"""The A/B readout: which versions, pooling of released groups only, the difference's 95% interval, and the
field in GET /v1/fleet/metrics of a real cloud."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud.ab_readout import ab_readout, versions_to_compare
from service.cloud.rollout import RolloutState
from service.cloud.schemas import EstimatePublic, FleetMetricPublic
from service.common.ldp import LATENCY_BUCKETS, Z_95
from tests.cloud.conftest import ADMIN, enrol, poll, publish
from tests.cloud.test_telemetry import advance, rep

A, B = "tiny-0.0.1", "tiny-0.0.2"


def group(version: str, clicked: float, *, reports: int, se: float, status: str = "released", day: str = "2026-01-01"):
    raw = clicked + 0.01
    return FleetMetricPublic(
        metric="top_item_clicked",
        model_version=version,
        day=day,
        status=status,  # type: ignore[arg-type]
        reports=reports if status == "released" else None,
        estimates=[
            EstimatePublic(category="not_clicked", estimate=1 - clicked, std_error=se, ci_low=0, ci_high=1,
                           raw_estimate=1 - raw),
            EstimatePublic(category="clicked", estimate=clicked, std_error=se, ci_low=0, ci_high=1, raw_estimate=raw),
        ]
        if status == "released"
        else None,
    )  # fmt: skip


def test_which_versions_are_compared() -> None:
    assert versions_to_compare(RolloutState()) is None
    assert versions_to_compare(RolloutState(stable=A)) is None  # nothing to compare with yet
    assert versions_to_compare(RolloutState(stable=A, candidate=B, percent=10)) == (A, B, "canary")
    assert versions_to_compare(RolloutState(stable=B, history=(A,))) == (A, B, "last_rollout")


def test_sides_pool_released_groups_by_reports_and_the_interval_is_the_differences() -> None:
    items = [
        group(A, 0.2, reports=100, se=0.05),
        group(A, 0.4, reports=300, se=0.03, day="2026-01-02"),
        group(A, 0.99, reports=0, se=0.0, status="withheld", day="2026-01-03"),  # never counted
        group(B, 0.5, reports=200, se=0.04),
        group(B, 0.9, reports=0, se=0.0, status="open", day="2026-01-02"),
    ]
    readout = ab_readout(items, RolloutState(stable=A, candidate=B, percent=50))
    assert readout is not None and (readout.baseline, readout.candidate, readout.basis) == (A, B, "canary")
    row = next(r for r in readout.rows if r.category == "clicked")
    assert row.baseline is not None and row.candidate is not None
    assert row.baseline.estimate == pytest.approx((100 * 0.2 + 300 * 0.4) / 400)
    assert row.baseline.std_error == pytest.approx(math.sqrt((100 * 0.05) ** 2 + (300 * 0.03) ** 2) / 400)
    assert (row.baseline.reports, row.baseline.groups, row.candidate.groups) == (400, 2, 1)
    assert row.difference == pytest.approx(0.5 - 0.35)
    se = math.hypot(row.baseline.std_error, 0.04)
    assert row.ci_low == pytest.approx(0.15 - Z_95 * se) and row.ci_high == pytest.approx(0.15 + Z_95 * se)
    assert row.ci_low <= row.difference <= row.ci_high
    assert row.min_detectable == pytest.approx((1.959964 + 0.841621) * se)  # 80% power at the 5% level
    latency = [r for r in readout.rows if r.metric == "latency_bucket"]
    assert [r.category for r in latency] == list(LATENCY_BUCKETS)
    assert all(r.baseline is None and r.difference is None for r in latency)  # no released latency groups


def test_a_side_without_a_released_group_has_no_difference() -> None:
    readout = ab_readout([group(A, 0.3, reports=50, se=0.1)], RolloutState(stable=B, history=(A,)))
    assert readout is not None and readout.basis == "last_rollout"
    row = next(r for r in readout.rows if r.category == "clicked")
    assert row.baseline is not None and row.candidate is None
    assert row.difference is None and row.ci_low is None


def test_the_difference_interval_stays_within_minus_one_and_one() -> None:
    items = [group(A, 0.0, reports=10, se=0.5), group(B, 1.0, reports=10, se=0.5)]
    row = next(r for r in ab_readout(items, RolloutState(stable=A, candidate=B, percent=5)).rows if r.metric ==
               "top_item_clicked" and r.category == "clicked")  # fmt: skip
    assert -1.0 <= row.ci_low <= row.difference <= row.ci_high <= 1.0


@pytest.fixture
def dev_cloud(settings: Settings, tiny_archive: bytes) -> Iterator[tuple[TestClient, str]]:
    """A dev-mode cloud (its clock can be advanced), k_min = 3, window 1 day."""
    with TestClient(create_app(settings.model_copy(update={"dev_mode": True}))) as client:
        yield client, publish(client, tiny_archive)


def test_fleet_metrics_show_the_readout_of_a_canary(dev_cloud, make_variant) -> None:
    client, first = dev_cloud  # k_min = 3, window 1 day
    second = publish(client, make_variant("0.0.2"))
    assert client.put("/v1/rollout", json={"version": first, "percent": 100}, headers=ADMIN).status_code == 200
    assert client.get("/v1/fleet/metrics").json()["ab"] is None  # one version: nothing to compare
    assert client.put("/v1/rollout", json={"version": second, "percent": 50}, headers=ADMIN).status_code == 200
    rng = np.random.default_rng(3)
    per_side = {first: 0, second: 0}
    i = 0
    while min(per_side.values()) < 4:  # each device reports under the version it was offered: 4 on each side
        h = enrol(client, f"ab-{i}")
        version = poll(client, f"ab-{i}", h)
        i += 1
        if per_side[version] == 4:
            continue
        per_side[version] += 1
        r = rep(version, metric="top_item_clicked", value=bool(rng.random() < 0.5), seed=i)
        assert client.post("/v1/telemetry", json={"reports": [r]}, headers=h).json()["accepted"] == 1
    assert client.get("/v1/fleet/metrics").json()["ab"]["rows"][0]["baseline"] is None  # open: nothing released
    advance(client, 2)
    body = client.get("/v1/fleet/metrics").json()
    ab = body["ab"]
    assert (ab["baseline"], ab["candidate"], ab["basis"]) == (first, second, "canary")
    clicked = next(r for r in ab["rows"] if r["category"] == "clicked")
    released = {g["model_version"]: g for g in body["data"] if g["status"] == "released"}
    for side, version in (("baseline", first), ("candidate", second)):
        shown = next(e for e in released[version]["estimates"] if e["category"] == "clicked")
        assert clicked[side]["estimate"] == pytest.approx(shown["estimate"]) and clicked[side]["reports"] == 4
    assert clicked["ci_low"] <= clicked["difference"] <= clicked["ci_high"]
    assert clicked["difference"] == pytest.approx(clicked["candidate"]["estimate"] - clicked["baseline"]["estimate"])
