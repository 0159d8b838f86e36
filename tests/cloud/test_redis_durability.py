"""A Redis crash during ingest loses no acknowledged report, and the test can tell when it would.

Runs its own redis-server in a temp dir, ingests from several concurrent writers, kills the server mid-stream
once enough reports were acknowledged, restarts it on the same files and checks, through the store's own API,
that every acknowledged report is there (re-sending it is a duplicate), counted exactly once and charged once.

A plain SIGKILL cannot show a missing fsync: bytes written to the kernel outlive the process in the page cache.
So the server runs with `powerloss_shim.c` preloaded, which keeps append-only-file writes in the process until
it fsyncs them: the kill then loses exactly what a power cut would. The same harness must find lost
acknowledged reports on a server configured with `appendfsync no` (the store acknowledges before fsync),
otherwise it proves nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud.errors import StoreError
from service.cloud.store import GroupKey, PreparedReport, make_store
from service.cloud.store.redis import RedisStore
from tests.cloud.conftest import ADMIN_TOKEN
from tests.cloud.redis_server import RedisProcess

DAY = dt.datetime.now(dt.UTC).date().isoformat()
COST = 10_000  # 0.01 epsilon
KILL_AFTER_ACKS = 300
WRITERS = 6
SHIM_SOURCE = Path(__file__).with_name("powerloss_shim.c")


@pytest.fixture(scope="module")
def powerloss_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, compiled with the system C compiler (gcc or cc) for this test run."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("a C compiler (gcc or cc) is needed to build the power-loss shim of the durability tests")
    out = tmp_path_factory.mktemp("shim") / "powerloss.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM_SOURCE), "-ldl", "-lpthread"], check=True)
    return out


@pytest.fixture
def durable_redis(tmp_path: Path, powerloss_shim: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", durable=True, appendfsync="always", preload=powerloss_shim)
    server.start()
    yield server
    server.kill()


def _device(w: int, batch: int) -> str:
    return f"dev-{w}-{batch // 10}"  # 10 batches of 5 per device: 0.5 epsilon, within budget


def _report(device: int, seq: int) -> PreparedReport:
    return PreparedReport(
        report_id=f"{device}-{seq}",
        group=GroupKey("top_item_clicked", f"m-{seq}", DAY),  # a group each: one report per device and group
        mechanism="rr",
        epsilon_label="0.01",
        cost_micro=COST,
        support=(seq % 2,),
    )


async def _ingest_until_killed(
    server: RedisProcess, *, require_durable: bool
) -> tuple[dict[str, list[PreparedReport]], set[str]]:
    """(acknowledged reports by device, every device a report was sent for); the server is SIGKILLed once
    KILL_AFTER_ACKS reports were acknowledged."""
    store = RedisStore(server.url, require_durable=require_durable)
    await store.open()
    acked: dict[str, list[PreparedReport]] = {}
    sent: set[str] = set()

    async def writer(w: int) -> None:
        for batch in range(10_000):  # bounded; the kill ends it long before
            device = _device(w, batch)
            reps = [_report(w, batch * 5 + j) for j in range(5)]
            sent.add(device)
            try:
                out = await store.ingest(device, reps, budget_micro=1_000_000, ttl_days=8)
            except StoreError:
                return  # the server is gone; nothing from this call was acknowledged
            assert out == ["accepted"] * 5
            acked.setdefault(device, []).extend(reps)
            if sum(map(len, acked.values())) >= KILL_AFTER_ACKS and server.proc is not None:
                server.kill()  # other writers have requests in flight right now

    try:
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    finally:
        await store.close()
    return acked, sent


async def _audit(server: RedisProcess, acked: dict[str, list[PreparedReport]], sent: set[str]) -> tuple[int, int, int]:
    """(acknowledged reports lost, reports counted in the fleet aggregate, reports charged to ledgers).

    Lost = re-sending it is accepted instead of recognised as a duplicate. Counted and charged must be equal:
    a report is either applied whole (id, ledger, cell) or not at all."""
    store = RedisStore(server.url)
    await store.open()
    try:
        charged = sum([await store.spent(d, DAY) for d in sent]) // COST
        groups = await store.fleet(metric="top_item_clicked", day=DAY)  # none at all if everything was lost
        counted = sum(c.n for g in groups for c in g.cells)
        lost = 0
        for device, reps in acked.items():
            out = await store.ingest(device, reps, budget_micro=10_000_000, ttl_days=8)
            lost += sum(o != "duplicate" for o in out)
    finally:
        await store.close()
    return lost, counted, charged


def test_kill_during_ingest_loses_no_acknowledged_report(durable_redis: RedisProcess) -> None:
    acked, sent = asyncio.run(_ingest_until_killed(durable_redis, require_durable=True))
    total = sum(map(len, acked.values()))
    assert total >= KILL_AFTER_ACKS
    durable_redis.start()  # same port, same data dir: Redis replays its append-only file
    lost, counted, charged = asyncio.run(_audit(durable_redis, acked, sent))
    assert lost == 0
    assert counted == charged >= total  # in-flight, unacknowledged reports may be there too, but whole


def test_the_audit_catches_a_store_that_acknowledges_before_fsync(tmp_path: Path, powerloss_shim: Path) -> None:
    """The same harness on `appendfsync no`: acknowledged reports must be found lost, or the test above
    could not fail."""
    server = RedisProcess(tmp_path / "lax", durable=True, appendfsync="no", preload=powerloss_shim)
    server.start()
    try:
        acked, sent = asyncio.run(_ingest_until_killed(server, require_durable=False))
        server.start()
        lost, _, _ = asyncio.run(_audit(server, acked, sent))
    finally:
        server.kill()
    assert lost > 0, "a store that acknowledges before fsync lost nothing: the power-loss simulation is not working"


def test_durable_configuration_is_detected(durable_redis: RedisProcess, tmp_path: Path) -> None:
    async def check() -> str:
        store = make_store(durable_redis.url, require_durable_redis=True)
        await store.open()
        try:
            return await store.durability()
        finally:
            await store.close()

    assert "fsynced before acknowledged" in asyncio.run(check())
    lax = RedisProcess(tmp_path / "lax", durable=False)
    lax.start()
    try:
        with pytest.raises(StoreError, match="may lose acknowledged writes"):
            asyncio.run(make_store(lax.url, require_durable_redis=True).open())
    finally:
        lax.kill()


def test_readyz_and_requests_when_redis_dies(durable_redis: RedisProcess, tmp_path: Path) -> None:
    settings = Settings(store_url=durable_redis.url, data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN, dev_mode=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        durable_redis.kill()
        resp = client.get("/readyz")
        assert resp.status_code == 503 and resp.json()["status"] == "unavailable"
        resp = client.post("/v1/devices", json={"device_id": "phone-1"})
        assert resp.status_code == 503 and resp.json()["error"] == "StoreError"
        assert client.get("/healthz").status_code == 200
