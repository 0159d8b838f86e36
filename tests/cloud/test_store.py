"""One suite, both real backends (SQLite file, Redis db 14): the Store contract, including atomicity under
concurrency (two store instances stand in for two cloud replicas)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from service.cloud.rollout import RolloutState
from service.cloud.store import DeviceAuth, GroupKey, PreparedReport, Store, VersionRecord, make_store
from service.common.errors import StoreError

pytestmark = pytest.mark.anyio
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
BUDGET = 1_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
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
    rid: str, *, cost: float = 0.1, metric: str = "latency_bucket", day: str = TODAY, sup=(1,)
) -> PreparedReport:
    return PreparedReport(
        report_id=rid,
        group=GroupKey(metric, "m-1", day),
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


async def test_concurrent_version_registration_has_one_winner(store_url: str, store: Store) -> None:
    other = make_store(store_url)
    await other.open()
    try:
        results = await asyncio.gather(
            *[(store if i % 2 else other).put_version(record("race-1", sha=f"{i:x}" * 64)) for i in range(1, 9)]
        )
    finally:
        await other.close()
    assert sum(created for _, created in results) == 1
    assert len({r.bundle_sha256 for r, _ in results}) == 1


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
    # a refused report is not remembered: once budget exists (another day), the same id is judged afresh
    yesterday = (dt.date.fromisoformat(TODAY) - dt.timedelta(days=1)).isoformat()
    assert await store.ingest("d1", [report("r3", cost=0.2, day=yesterday)], budget_micro=BUDGET, ttl_days=8) == [
        "accepted"
    ]
    # ids are per device: another device may use the same id
    assert await store.ingest("d2", [report("r1", sup=(0, 2))], budget_micro=BUDGET, ttl_days=8) == ["accepted"]

    fleet = {(a.group.day, a.group.metric): a for a in await store.fleet()}
    today = fleet[(TODAY, "latency_bucket")]
    assert today.devices == 2
    cells = {c.epsilon_label: (c.mechanism, c.n, c.counts) for c in today.cells}
    assert cells == {"0.40": ("oue", 1, {1: 1}), "0.50": ("oue", 1, {1: 1}), "0.10": ("oue", 2, {0: 1, 1: 1, 2: 1})}
    assert fleet[(yesterday, "latency_bucket")].devices == 1
    assert await store.fleet(day=yesterday) == [fleet[(yesterday, "latency_bucket")]]
    assert await store.fleet(metric="top_genre") == []


async def test_cells_are_kept_per_mechanism_and_epsilon(store: Store) -> None:
    reps = [report("a", cost=0.1), report("b", cost=0.2), report("c", cost=0.2, sup=(0, 1))]
    await store.ingest("d1", reps, budget_micro=BUDGET, ttl_days=8)
    (agg,) = await store.fleet()
    cells = {c.epsilon_label: c for c in agg.cells}
    assert set(cells) == {"0.10", "0.20"}
    assert cells["0.20"].n == 2 and cells["0.20"].counts == {1: 2, 0: 1}


async def test_concurrent_ingest_never_overspends(store_url: str, store: Store) -> None:
    """40 concurrent batches from one device through two store instances: exactly budget/cost accepted."""
    other = make_store(store_url)
    await other.open()
    try:
        batches = [[report(f"r{i}-{j}", cost=0.05) for j in range(3)] for i in range(40)]
        outs = await asyncio.gather(
            *[
                (store if i % 2 else other).ingest("d1", b, budget_micro=BUDGET, ttl_days=8)
                for i, b in enumerate(batches)
            ]
        )
    finally:
        await other.close()
    accepted = sum(o.count("accepted") for o in outs)
    assert accepted == 20
    assert await store.spent("d1", TODAY) == BUDGET
    (agg,) = await store.fleet()
    assert sum(c.n for c in agg.cells) == 20


async def test_bad_urls_are_refused() -> None:
    with pytest.raises(StoreError):
        make_store("postgres://x")
    with pytest.raises(StoreError):
        make_store("sqlite:///")
