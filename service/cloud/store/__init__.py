"""Cloud state behind one `Store` interface; `make_store` picks the backend from a URL."""

from __future__ import annotations

from service.cloud.errors import StoreError
from service.cloud.store.base import Store
from service.cloud.store.records import (
    CellAggregate,
    DeviceAuth,
    EnrolmentTokenRecord,
    EnrolOutcome,
    FleetAggregate,
    GroupKey,
    IngestOutcome,
    PreparedReport,
    VersionRecord,
)


def make_store(url: str, *, redis_prefix: str = "eibert:", require_durable_redis: bool = False) -> Store:
    """`redis://…` -> RedisStore, `sqlite:///…` -> SqliteStore. Not opened yet (the app lifespan opens it)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from service.cloud.store.redis import RedisStore

        return RedisStore(url, prefix=redis_prefix, require_durable=require_durable_redis)
    if url.startswith("sqlite:///"):
        from service.cloud.store.sqlite import SqliteStore, sqlite_path

        return SqliteStore(sqlite_path(url))
    raise StoreError(f"unsupported store URL {url!r}: use redis://host:port/db or sqlite:///path")


__all__ = [
    "CellAggregate",
    "DeviceAuth",
    "EnrolOutcome",
    "EnrolmentTokenRecord",
    "FleetAggregate",
    "GroupKey",
    "IngestOutcome",
    "PreparedReport",
    "Store",
    "VersionRecord",
    "make_store",
]
