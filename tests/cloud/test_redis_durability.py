"""A Redis crash during ingest loses no acknowledged report.

Runs its own redis-server (appendonly yes, appendfsync always) in a temp dir, ingests from several concurrent
writers, SIGKILLs the server mid-stream once enough reports were acknowledged, restarts it on the same files
and checks every acknowledged report is there, counted exactly once and charged to the ledger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud.store import GroupKey, PreparedReport, make_store
from service.cloud.store.redis import RedisStore
from service.common.errors import StoreError
from tests.cloud.conftest import ADMIN_TOKEN
from tests.cloud.redis_server import RedisProcess

DAY = dt.datetime.now(dt.UTC).date().isoformat()
COST = 10_000  # 0.01 epsilon
KILL_AFTER_ACKS = 300


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", durable=True)
    server.start()
    yield server
    server.kill()


def _report(device: int, seq: int) -> PreparedReport:
    return PreparedReport(
        report_id=f"{device}-{seq}",
        group=GroupKey("top_item_clicked", "m-1", DAY),
        mechanism="rr",
        epsilon_label="0.01",
        cost_micro=COST,
        support=(seq % 2,),
    )


async def _ingest_until_killed(server: RedisProcess) -> set[tuple[str, str]]:
    store = RedisStore(server.url, require_durable=True)
    await store.open()
    acked: set[tuple[str, str]] = set()

    async def writer(w: int) -> None:
        for batch in range(10_000):  # bounded; the kill ends it long before
            device = f"dev-{w}-{batch // 10}"  # 10 batches of 5 per device: 0.5 epsilon, within budget
            reps = [_report(w, batch * 5 + j) for j in range(5)]
            try:
                out = await store.ingest(device, reps, budget_micro=1_000_000, ttl_days=8)
            except StoreError:
                return  # the server is gone; nothing from this call was acknowledged
            assert out == ["accepted"] * 5
            acked.update((device, r.report_id) for r in reps)
            if len(acked) >= KILL_AFTER_ACKS and server.proc is not None:
                server.kill()  # other writers have requests in flight right now

    try:
        await asyncio.gather(*(writer(w) for w in range(6)))
    finally:
        await store.close()
    return acked


def test_kill_during_ingest_loses_no_acknowledged_report(durable_redis: RedisProcess) -> None:
    acked = asyncio.run(_ingest_until_killed(durable_redis))
    assert len(acked) >= KILL_AFTER_ACKS
    durable_redis.start()  # same port, same data dir: Redis replays its append-only file
    r = redis.Redis.from_url(durable_redis.url, decode_responses=True)
    lost = [(d, rid) for d, rid in acked if not r.sismember(f"eibert:seen:{d}|{DAY}", rid)]
    assert lost == []
    # nothing half-applied either: every remembered id is counted once and charged once
    seen_total = 0
    for key in r.scan_iter(f"eibert:seen:*|{DAY}"):
        device = key.removeprefix("eibert:seen:").rsplit("|", 1)[0]
        ids = r.smembers(key)
        seen_total += len(ids)
        assert int(r.get(f"eibert:eps:{device}|{DAY}")) == COST * len(ids)
    cell = r.hgetall(f"eibert:cell:top_item_clicked|m-1|{DAY}|rr|0.01")
    assert int(cell["n"]) == seen_total >= len(acked)
    assert int(cell.get("0", 0)) + int(cell.get("1", 0)) == seen_total
    r.close()


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
