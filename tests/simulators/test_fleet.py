"""One small fleet run (20 devices, 2 simulated days) against a real cloud and a real edge node, checked from
every side: enrolment, a 10% -> 100% rollout, corrupted downloads, LDP telemetry and the summary."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
import pytest

from service.cloud.rollout import bucket
from service.common.ldp import GENRES, METRICS
from simulators.faults import FaultSpec
from simulators.fleet import Fleet, FleetConfig, ScheduledEvent
from simulators.summary import FleetSummary, render
from tests.simulators.conftest import ADMIN_TOKEN, Cloud

DEVICES = 20
EDGE_DEVICES = 4
RUN_ID = "t3"  # device ids sim-t3-000NN: 3 of the 16 in-process devices fall in the 10% cohort of tiny-0.0.2
CANARY_AT, FULL_AT = 6, 22


class Recorder:
    """Everything the devices sent to the cloud (the fleet's transport calls this for each request)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent: list[tuple[str, str, bytes]] = []

    def __call__(self, request: httpx.Request) -> None:
        with self.lock:
            self.sent.append((request.method, request.url.path, request.content))


@pytest.fixture(scope="module")
def run(cloud: Cloud, tiny_bundle: Path, variant_bundle: Path, edge_url: str, tmp_path_factory):
    first = cloud.publish(tiny_bundle)
    cloud.rollout(first, 100)
    variant: dict[str, str] = {}

    async def canary() -> str:
        variant["version"] = await asyncio.to_thread(cloud.publish, variant_bundle)
        return str(await asyncio.to_thread(cloud.rollout, variant["version"], 10))

    async def full() -> str:
        return str(await asyncio.to_thread(cloud.rollout, variant["version"], 100))

    recorder = Recorder()
    config = FleetConfig(
        cloud_url=cloud.url,
        bundle=tiny_bundle,
        edge_urls=[edge_url],
        edge_devices=EDGE_DEVICES,
        devices=DEVICES,
        days=2,
        seed=7,
        faults=FaultSpec(bitflip=1, truncate=1, drop=0.03),
        state_dir=tmp_path_factory.mktemp("sim-state"),
        run_id=RUN_ID,
        admin_token=ADMIN_TOKEN,  # the fleet issues its enrolment token and advances the cloud's clock
    )
    fleet = Fleet(config, events=[ScheduledEvent(CANARY_AT, canary), ScheduledEvent(FULL_AT, full)], observer=recorder)
    summary = asyncio.run(fleet.run())
    return fleet, summary, recorder, first, variant["version"]


def test_every_device_enrols_once_and_ranks(run) -> None:
    fleet, summary, _, _, _ = run
    assert summary.enrolled == DEVICES and summary.requests["enrol"] >= DEVICES
    assert summary.http_devices == EDGE_DEVICES and summary.in_process_devices == DEVICES - EDGE_DEVICES
    assert summary.requests["rank"] == summary.sessions > 0
    assert summary.latency["all"].calls == summary.sessions
    assert summary.latency["http"].calls > 0 and summary.latency["in_process"].calls > 0
    assert len({d.device_id for d in fleet.devices}) == DEVICES


def test_rollout_reaches_the_canary_cohort_then_everyone(run) -> None:
    fleet, summary, _, first, variant = run
    followers = [d.device_id for d in fleet.devices if d.edge is None]
    cohort = [d for d in followers if bucket(d, variant) < 10]
    assert cohort, "the fixed run id is chosen so the 10% cohort is not empty"
    before_full = next(e for e in summary.timeline if e.hour == FULL_AT)
    assert before_full.versions.get(variant, 0) == len(cohort)  # the canary, and only the canary
    # At the end every in-process device runs the new version; edge devices follow their node (no cloud here).
    assert summary.versions == {variant: len(followers), first: EDGE_DEVICES}
    assert sum(summary.versions.values()) == DEVICES
    assert summary.rollout.stable == variant and summary.rollout.progress == 1.0
    assert summary.requests["poll"] > DEVICES and summary.requests["download"] >= len(followers)


def test_corrupted_downloads_are_rejected_and_the_old_model_keeps_serving(run) -> None:
    fleet, summary, _, first, _ = run
    injected = {f.kind: f.injected for f in summary.faults}
    assert injected["bitflip"] == 1 and injected["truncate"] == 1
    assert summary.rejected_downloads.get("sha256", 0) >= 2
    assert fleet.stats.corrupt_kept == {first: fleet.stats.corrupt_rejected}  # still serving the old version
    assert fleet.stats.corrupt_recovered >= 1  # and installed the new one at a later check
    assert summary.checks["every corrupted download rejected"]


def test_telemetry_goes_through_the_outbox_with_no_raw_text(run) -> None:
    fleet, summary, recorder, _, _ = run
    t = summary.telemetry
    assert t.recorded > 0 and t.accepted > 0 and t.pending == 0 and t.refused == 0
    assert t.accepted + t.duplicate == t.recorded
    raw = {b.text for d in fleet.devices for b in d.behaviors}
    genres = {g for g in GENRES if len(g) > 4}
    telemetry_bodies = [body for method, path, body in recorder.sent if path == "/v1/telemetry"]
    assert telemetry_bodies
    for method, path, body in recorder.sent:
        text = body.decode("utf-8", "replace")
        assert not any(r in text for r in raw), f"raw behavior text in {method} {path}"
    for body in telemetry_bodies:
        text = body.decode()
        assert not any(f'"{g}"' in text for g in genres), "a raw genre left the device"
    assert summary.epsilon.per_device_day_max <= summary.epsilon.daily_budget + 1e-9
    assert 0 < summary.epsilon.per_device_total_mean <= summary.epsilon.per_device_total_max


def test_fleet_estimates_sit_beside_the_truth(run) -> None:
    _, summary, _, _, _ = run
    by_metric = {m.metric: m for m in summary.fleet_estimates}
    assert set(by_metric) == {"top_item_clicked", "latency_bucket", "top_genre"}
    genre = by_metric["top_genre"]
    assert genre.groups_released >= 1 and genre.reports > 0
    assert genre.categories and all(0.0 <= c.truth <= 1.0 for c in genre.categories)
    assert abs(sum(c.truth for c in by_metric["top_item_clicked"].categories) - 1.0) < 1e-6


def test_days_are_the_clouds_and_all_closed_at_the_end(run, cloud: Cloud) -> None:
    """Labels come from the cloud's clock, which the fleet advanced once per simulated day and then past the
    window: two simulated days are two consecutive cloud days, and both are closed (none "open")."""
    fleet, _, _, _, _ = run
    import datetime as dt

    clock = httpx.get(cloud.url + "/v1/clock").json()
    groups = httpx.get(cloud.url + "/v1/fleet/metrics", params={"limit": 1000}).json()["data"]
    days = sorted({g["day"] for g in groups})
    today = dt.date.fromisoformat(clock["today"])
    assert days == [(today - dt.timedelta(days=n)).isoformat() for n in (3, 2)]  # 2 days + the 1-day window
    assert {g["status"] for g in groups} <= {"released", "withheld"}
    dev, other = (
        [n for n in fleet.notes if n.startswith("dev-mode cloud")],
        [n for n in fleet.notes if not n.startswith("dev-mode cloud")],
    )
    assert len(dev) == 1 and not other, fleet.notes  # the summary says the days were compressed, and nothing else


def test_summary_is_consistent_and_round_trips_as_json(run) -> None:
    _, summary, _, _, _ = run
    assert all(summary.checks.values()), summary.checks
    again = FleetSummary.model_validate_json(summary.model_dump_json())
    assert again == summary
    days = [e for e in summary.timeline if e.text.startswith("day done")]
    assert len(days) == 2


def test_every_failure_is_counted_and_explained_by_an_injected_fault(run) -> None:
    _, summary, _, _, _ = run
    f = summary.failures
    injected = {r.kind: r.injected for r in summary.faults}
    assert f.unexplained == 0 and not f.unexplained_examples, f
    assert f.by_call["verify"] == {"bitflip": 1, "truncate": 1}  # each corrupted download, refused once
    assert sum(c.get("drop", 0) for c in f.by_call.values()) == injected["drop"] > 0  # every drop, once
    assert f.explained == sum(n for c in f.by_call.values() for n in c.values())


def test_estimates_are_consistent_and_inside_their_intervals(run) -> None:
    _, summary, _, _, _ = run
    for m in summary.fleet_estimates:
        for c in m.categories:
            assert 0.0 <= c.ci_low <= c.estimate <= c.ci_high <= 1.0, c
        if m.groups_released:
            assert m.narrowest_interval is not None and 0.0 <= m.narrowest_interval <= 1.0
    clicked = {c.category: c.estimate for m in summary.fleet_estimates if m.metric == "top_item_clicked"
               for c in m.categories}  # fmt: skip
    assert sum(clicked.values()) == pytest.approx(1.0, abs=2e-4)  # both categories shown, rounded to 4 places


def test_every_released_interval_is_checked_against_its_groups_truth_and_no_outbox_stays_open(run) -> None:
    """Coverage and consistency count every category of every released group; an outbox is open only while
    it holds pending reports (10,000 devices holding theirs open would run out of file descriptors)."""
    fleet, summary, _, _, _ = run
    for m in summary.fleet_estimates:
        d = len(METRICS[m.metric].categories)
        assert m.coverage.intervals == m.groups_released * d, m
        assert m.coverage.inconsistent == 0 and m.coverage.covered >= m.coverage.intervals // 2, m
    assert summary.checks["released estimates in [0, 1], inside their intervals, summing to 1"]
    assert all(d.telemetry is None for d in fleet.devices)


def test_the_ab_readout_compares_the_last_rollout_from_released_estimates(run) -> None:
    _, summary, _, first, variant = run
    ab = summary.ab
    assert ab is not None and (ab.baseline, ab.candidate, ab.basis) == (first, variant, "last_rollout")
    clicked = next(r for r in ab.rows if r.metric == "top_item_clicked" and r.category == "clicked")
    assert clicked.baseline is not None and clicked.candidate is not None, clicked
    assert clicked.ci_low <= clicked.difference <= clicked.ci_high
    assert "a/b readout    " + variant in render(summary)


def test_devices_log_every_impression_with_its_slot_and_click(run) -> None:
    fleet, summary, _, _, _ = run
    buffers = [d.impressions for d in fleet.devices]
    assert summary.impressions == sum(b.total for b in buffers) > 0
    assert sum(b.clicks() for b in buffers) == summary.clicks > 0
    top_k = fleet.config.top_k
    assert all(set(b.slots) <= set(range(top_k)) for b in buffers)
    # a skimmer (never past slot 2, as the persona says) has impressions below slot 2 but never a click there
    for device in fleet.devices:
        depth = device.persona.examine_depth
        if depth is not None:
            b = device.impressions
            assert not any(c for s, c in zip(b.slots, b.clicked, strict=True) if s >= depth)
