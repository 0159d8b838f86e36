"""One suite, both real backends (SQLite file, Redis db 14): the Store contract, including atomicity under
concurrency (two store instances stand in for two cloud replicas)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from service.cloud.errors import StoreError
from service.cloud.rollout import RolloutState
from service.cloud.store import (
    DeviceAuth,
    EnrolmentTokenRecord,
    EnrolOutcome,
    GroupKey,
    PreparedReport,
    Store,
    VersionRecord,
    make_store,
)

pytestmark = pytest.mark.anyio
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
TOMORROW = (dt.date.fromisoformat(TODAY) + dt.timedelta(days=1)).isoformat()
BUDGET = 1_000_000


def days_after(day: str, n: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=n)).isoformat()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = make_store(store_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def other(store_url: str, store: Store) -> AsyncIterator[Store]:
    """A second instance on the same backend: what a second cloud replica holds."""
    s = make_store(store_url)
    await s.open()
    yield s
    await s.close()


def record(version: str, sha: str = "a" * 64) -> VersionRecord:
    return VersionRecord(
        version=version,
        name="m",
        manifest={"version": version},
        signature="sig",
        public_key="pk",
        bundle_sha256=sha,
        bundle_bytes=10,
        model_bytes=5,
        registered_at="2025-01-01T00:00:00+00:00",
    )


def report(
    rid: str, *, cost: float = 0.1, metric: str = "latency_bucket", day: str = TODAY, sup=(1,), version: str = ""
) -> PreparedReport:
    """A prepared report; by default in a group of its own (version `m-<rid>`), since a device has at most one
    report per group and the budget tests need several."""
    return PreparedReport(
        report_id=rid,
        group=GroupKey(metric, version or f"m-{rid}", day),
        mechanism="oue",
        epsilon_label=f"{cost:.2f}",
        cost_micro=round(cost * 1e6),
        support=tuple(sup),
    )


async def test_ping_and_durability(store: Store) -> None:
    await store.ping()
    assert isinstance(await store.durability(), str)


async def test_devices(store: Store) -> None:
    assert await store.create_device("d1", "h1")
    assert not await store.create_device("d1", "h2")
    assert await store.create_device("d2", "h2")
    assert await store.device_for_token("h1") == "d1"
    assert await store.device_for_token("nope") is None
    assert (await store.device_view("d1", "h1"))[0] is DeviceAuth.OK
    assert (await store.device_view("d1", "h2"))[0] is DeviceAuth.OTHER_DEVICE
    assert (await store.device_view("d1", "zz"))[0] is DeviceAuth.UNKNOWN
    assert (await store.device_view("ghost", "zz"))[0] is DeviceAuth.UNKNOWN
    _auth, state = await store.device_view("d1", "h1")
    assert state == RolloutState()


async def test_versions_are_insert_once(store: Store) -> None:
    stored, created = await store.put_version(record("m-1"))
    assert created and stored.version == "m-1"
    again, created = await store.put_version(record("m-1", sha="b" * 64))
    assert not created and again.bundle_sha256 == "a" * 64  # never overwritten
    await store.put_version(record("m-2"))
    await store.put_version(record("m-3"))
    page, total = await store.list_versions(1, 5)
    assert total == 3 and [r.version for r in page] == ["m-2", "m-3"]
    assert await store.get_version("m-9") is None
    assert (await store.get_version("m-2")) == record("m-2")


async def test_concurrent_version_registration_has_one_winner(store: Store, other: Store) -> None:
    results = await asyncio.gather(
        *[(store if i % 2 else other).put_version(record("race-1", sha=f"{i:x}" * 64)) for i in range(1, 9)]
    )
    assert sum(created for _, created in results) == 1
    assert len({r.bundle_sha256 for r, _ in results}) == 1


async def test_blobs_are_content_addressed_written_once_and_shared(store: Store, other: Store) -> None:
    """Blob bytes live in the store, so a second replica reads what the first wrote; binary-safe, ~3 MB."""
    data = os.urandom(3_000_000) + b"\x00\xff\r\n"
    sha = await store.put_blob(data)
    assert sha == hashlib.sha256(data).hexdigest()  # the store names it, a caller cannot
    assert await other.get_blob(sha) == data
    assert await other.put_blob(data) == sha and await store.get_blob(sha) == data  # equal bytes: no change
    assert await store.get_blob("0" * 64) is None
    for bad in ("../" + "0" * 61, "A" * 64, "0" * 63):
        with pytest.raises(ValueError):
            await store.get_blob(bad)


async def test_rollout_compare_and_set(store: Store) -> None:
    s0 = await store.get_rollout()
    assert s0.generation == 0
    s1 = RolloutState(stable="m-1", generation=1)
    assert await store.cas_rollout(0, s1)
    assert not await store.cas_rollout(0, RolloutState(stable="m-2", generation=1))
    assert await store.get_rollout() == s1
    assert (await store.device_view("d", "h"))[1] == s1


async def test_ingest_budget_idempotency_and_aggregates(store: Store) -> None:
    out = await store.ingest(
        "d1", [report("r1", cost=0.4), report("r1", cost=0.4), report("r2", cost=0.5)], budget_micro=BUDGET, ttl_days=8
    )
    assert out == ["accepted", "duplicate", "accepted"]
    assert await store.spent("d1", TODAY) == 900_000
    out = await store.ingest(
        "d1", [report("r3", cost=0.2), report("r4", cost=0.1), report("r2", cost=0.5)], budget_micro=BUDGET, ttl_days=8
    )
    assert out == ["over_budget", "accepted", "duplicate"]
    assert await store.spent("d1", TODAY) == BUDGET
    # the budget is the server day's: a report labelled yesterday still spends today's (spent) budget
    yesterday = (dt.date.fromisoformat(TODAY) - dt.timedelta(days=1)).isoformat()
    assert await store.ingest("d1", [report("r3", cost=0.2, day=yesterday)], budget_micro=BUDGET, ttl_days=8) == [
        "over_budget"
    ]
    assert await store.spent("d1", yesterday) == 0
    # a refused report is not remembered: once budget exists (the next server day), the same id is judged afresh
    assert await store.ingest(
        "d1", [report("r3", cost=0.2, day=yesterday)], budget_micro=BUDGET, ttl_days=8, day=TOMORROW
    ) == ["accepted"]
    assert await store.spent("d1", TOMORROW) == 200_000
    # ids are per device: another device may use the same id
    assert await store.ingest("d2", [report("r1", sup=(0, 2))], budget_micro=BUDGET, ttl_days=8) == ["accepted"]

    fleet = {(a.group.day, a.group.model_version): a for a in await store.fleet()}
    assert fleet[(TODAY, "m-r1")].devices == 2
    cells = {c.epsilon_label: (c.mechanism, c.n, c.counts) for c in fleet[(TODAY, "m-r1")].cells}
    assert cells == {"0.40": ("oue", 1, {1: 1}), "0.10": ("oue", 1, {0: 1, 2: 1})}
    assert fleet[(yesterday, "m-r3")].devices == 1
    assert await store.fleet(day=yesterday) == [fleet[(yesterday, "m-r3")]]
    assert await store.fleet(metric="top_genre") == []


async def test_cells_are_kept_per_mechanism_and_epsilon(store: Store) -> None:
    reps = [report("a", cost=0.1), report("b", cost=0.2), report("c", cost=0.2, sup=(0, 1))]
    for i, r in enumerate(reps):
        one = dataclasses.replace(r, group=GroupKey("latency_bucket", "m-1", TODAY))
        assert await store.ingest(f"d{i}", [one], budget_micro=BUDGET, ttl_days=8) == ["accepted"]
    (agg,) = await store.fleet()
    cells = {c.epsilon_label: c for c in agg.cells}
    assert set(cells) == {"0.10", "0.20"}
    assert cells["0.20"].n == 2 and cells["0.20"].counts == {1: 2, 0: 1}


async def test_concurrent_ingest_never_overspends(store: Store, other: Store) -> None:
    """40 concurrent batches from one device through two store instances: exactly budget/cost accepted."""
    batches = [[report(f"r{i}-{j}", cost=0.05) for j in range(3)] for i in range(40)]
    outs = await asyncio.gather(
        *[(store if i % 2 else other).ingest("d1", b, budget_micro=BUDGET, ttl_days=8) for i, b in enumerate(batches)]
    )
    accepted = sum(o.count("accepted") for o in outs)
    assert accepted == 20
    assert await store.spent("d1", TODAY) == BUDGET
    assert sum(c.n for agg in await store.fleet() for c in agg.cells) == 20


async def test_a_device_has_at_most_one_report_per_group(store: Store, other: Store) -> None:
    """Issue 22: one device sent 50 reports into one group. Now the first counts and every other report of that
    device into the group is a repeat (refused, not remembered), in one batch, in later ones, through any
    instance and concurrently; other devices, and the device's reports into other groups, still count."""
    group = GroupKey("latency_bucket", "m-1", TODAY)
    same = [dataclasses.replace(report(f"r{i}"), group=group) for i in range(4)]
    assert await store.ingest("d1", same[:2], budget_micro=BUDGET, ttl_days=8) == ["accepted", "repeat"]
    outs = await asyncio.gather(
        *[(store if i % 2 else other).ingest("d1", [r], budget_micro=BUDGET, ttl_days=8) for i, r in enumerate(same)]
    )
    assert sorted(o[0] for o in outs) == ["duplicate", "repeat", "repeat", "repeat"]
    assert await store.ingest("d2", [same[1]], budget_micro=BUDGET, ttl_days=8) == ["accepted"]
    assert await store.ingest("d1", [report("r9")], budget_micro=BUDGET, ttl_days=8) == ["accepted"]
    (agg,) = await store.fleet(model_version="m-1")
    assert agg.devices == 2 and sum(c.n for c in agg.cells) == 2
    assert await store.spent("d1", TODAY) == 200_000  # repeats are not charged


async def test_report_id_is_unique_per_device_whatever_its_day(store: Store) -> None:
    """Issue 11: a report id re-sent with another day label was a duplicate on SQLite but counted twice on
    Redis. Now the same on both: a duplicate under any label, on any server day while the id is kept."""
    yesterday = days_after(TODAY, -1)
    assert await store.ingest("d1", [report("r1", day=TODAY)], budget_micro=BUDGET, ttl_days=2) == ["accepted"]
    assert await store.ingest("d1", [report("r1", day=yesterday)], budget_micro=BUDGET, ttl_days=2) == ["duplicate"]
    relabelled = [report("r1", day=TOMORROW), report("r1", metric="top_genre")]
    assert await store.ingest("d1", relabelled, budget_micro=BUDGET, ttl_days=2, day=TOMORROW) == ["duplicate"] * 2
    assert await store.ingest("d1", [report("r1")], budget_micro=BUDGET, ttl_days=2, day=days_after(TODAY, 2)) == [
        "duplicate"
    ]
    (agg,) = await store.fleet()
    assert sum(c.n for c in agg.cells) == 1 and await store.spent("d1", TODAY) == 100_000
    # kept ttl_days server days after it was accepted, then forgotten (no retry of it could be accepted then)
    late = days_after(TODAY, 3)
    assert await store.ingest("d1", [report("r1", day=late)], budget_micro=BUDGET, ttl_days=2, day=late) == ["accepted"]


async def test_ledger_is_charged_on_the_server_day_not_the_label(store: Store) -> None:
    labels = [days_after(TODAY, d) for d in range(-7, 2)]
    reps = [report(f"r{i}", cost=0.4, day=d) for i, d in enumerate(labels)]
    out = await store.ingest("d1", reps, budget_micro=BUDGET, ttl_days=2)
    assert out == ["accepted", "accepted"] + ["over_budget"] * 7
    assert await store.spent("d1", TODAY) == 800_000
    assert all([await store.spent("d1", d) == 0 for d in labels if d != TODAY])


async def test_a_labelled_day_takes_at_most_one_budget_across_server_days(store: Store) -> None:
    """Reports labelled yesterday are accepted today (the window), but a device's reports for one labelled
    day never carry more than one daily budget, however many server days they arrive on."""
    yesterday = days_after(TODAY, -1)
    full = [report("a", cost=0.6, day=yesterday), report("b", cost=0.4, day=yesterday)]
    assert await store.ingest("d1", full, budget_micro=BUDGET, ttl_days=2, day=yesterday) == ["accepted"] * 2
    late = [report("c", cost=0.1, day=yesterday), report("d", cost=0.9, day=TODAY), report("e", cost=0.2)]
    assert await store.ingest("d1", late, budget_micro=BUDGET, ttl_days=2) == ["over_budget", "accepted", "over_budget"]
    assert await store.spent("d1", TODAY) == 900_000


async def test_enrolment_tokens_quota_expiry_and_conflicts(store: Store) -> None:
    now = 1_000_000.0
    await store.create_enrolment_token(EnrolmentTokenRecord("e1", max_devices=2, expires_at=now + 60, label="x"))
    assert await store.enrol_device("d1", "t1", "nope", now=now) is EnrolOutcome.UNKNOWN_TOKEN
    assert await store.enrol_device("d1", "t1", "e1", now=now) is EnrolOutcome.ENROLLED
    assert await store.enrol_device("d1", "t9", "e1", now=now) is EnrolOutcome.DEVICE_EXISTS  # no quota used
    assert await store.enrol_device("d2", "t2", "e1", now=now) is EnrolOutcome.ENROLLED
    assert await store.enrol_device("d3", "t3", "e1", now=now) is EnrolOutcome.QUOTA_USED
    assert await store.device_for_token("t2") == "d2" and await store.device_for_token("t3") is None
    await store.create_enrolment_token(EnrolmentTokenRecord("e2", max_devices=5, expires_at=now + 60, label=""))
    assert await store.enrol_device("d4", "t4", "e2", now=now + 60) is EnrolOutcome.EXPIRED
    assert await store.device_for_token("t4") is None


async def test_concurrent_enrolment_never_exceeds_the_quota(store: Store, other: Store) -> None:
    await store.create_enrolment_token(EnrolmentTokenRecord("e1", max_devices=5, expires_at=2e9, label=""))
    outs = await asyncio.gather(
        *[(store if i % 2 else other).enrol_device(f"d{i}", f"t{i}", "e1", now=1e9) for i in range(30)]
    )
    assert outs.count(EnrolOutcome.ENROLLED) == 5 and outs.count(EnrolOutcome.QUOTA_USED) == 25


async def test_rate_windows(store: Store) -> None:
    t = 6000.0  # a window boundary for 60 s windows
    assert [await store.hit_rate("k", limit=3, window_s=60, now=t + i) for i in range(3)] == [None] * 3
    assert await store.hit_rate("k", limit=3, window_s=60, now=t + 10) == pytest.approx(50.0)
    assert await store.hit_rate("other", limit=3, window_s=60, now=t + 10) is None  # per key
    assert await store.hit_rate("k", limit=3, window_s=60, now=t + 60) is None  # a new window


async def test_clock_only_moves_forward_and_is_shared(store: Store, other: Store) -> None:
    assert await store.clock_offset() == 0
    assert await store.advance_clock(2) == 2
    with pytest.raises(StoreError):
        await store.advance_clock(0)
    assert await other.clock_offset() == 2 and await other.advance_clock(1) == 3
    assert await store.clock_offset() == 3


async def test_releases_are_put_once(store: Store) -> None:
    assert await store.releases(["g1"]) == {}
    assert await store.put_release("g1", '{"a": 1}') == '{"a": 1}'
    assert await store.put_release("g1", '{"a": 2}') == '{"a": 1}'  # never overwritten
    await store.put_release("g2", "{}")
    assert await store.releases(["g1", "g2", "g3", "g1"]) == {"g1": '{"a": 1}', "g2": "{}"}
    assert await store.releases(["g2"]) == {"g2": "{}"} and await store.releases([]) == {}
    many = [f"x{i}" for i in range(1200)]  # more than one SQL statement's worth
    for g in many[::100]:
        await store.put_release(g, g)
    assert await store.releases(many) == {g: g for g in many[::100]}


async def test_bad_urls_are_refused() -> None:
    with pytest.raises(StoreError):
        make_store("postgres://x")
    with pytest.raises(StoreError):
        make_store("sqlite:///")
