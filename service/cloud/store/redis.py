"""Redis store (`redis://host:port/db`): the production and multi-replica choice; redis-py asyncio.

Every multi-key change is one Lua script (atomic: no other client sees half of it). Durability is the
server's: a reply means the write is in memory, and on disk only if the server runs with `appendonly yes`
and `appendfsync always` (Redis fsyncs the AOF before it replies). `durability()` reads that configuration;
with `require_durable` the store refuses to open against a server that could lose acknowledged writes.

Keys (all under a configurable prefix):
    dev:{id} -> token sha256 ("revoked" once revoked)                   rollout -> RolloutState JSON
    tok:{sha256} -> device id (expires with the token: Redis drops the key at its expiry)
    ver:{version} -> VersionRecord    versions (zset by seq), verseq    seen:{dev} (zset: report id -> server day)
    eps:{dev}|{day} -> micro-epsilon charged on server day {day};  epsl:{dev}|{day} -> ... on reports labelled {day}
    cell:{metric|version|day|mech|eps} (hash: n, category idx -> count)
    cells (set of cell labels)        devs:{metric|version|day} (set of device ids: one report each)
    offered:{dev} (set of the versions this device was offered)
    etok:{sha256} (hash: max, used, exp, label, revoked: an enrolment token), etoks (zset by issue time)
    rl:{key}|{window start} -> count
    clock -> offset days              releases (hash: group label -> release JSON)
    owner -> "<mode>:<deployment>" of the clouds that may use this store (SET NX by the first)
    rotations (hash: key version -> signed rotation statement JSON, HSETNX)
    blob:{sha256} -> the blob's bytes (SET NX: written once; a 32 MB upload cap keeps it far below Redis's
    512 MB string limit)

`seen:{dev}` is one sorted set per device, not per day, so an id is a duplicate whatever day a report carries
(the same rule as SQLite's primary key); its score is the server day the id was accepted on, which is what
ids are trimmed by.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from service.cloud.errors import StoreError
from service.cloud.rollout import RolloutState
from service.cloud.store import redis_scripts as scripts
from service.cloud.store.base import Store, day_number, parse_rollout
from service.cloud.store.records import EnrolmentTokenRecord, EnrolOutcome, IngestOutcome, PreparedReport, VersionRecord

log = logging.getLogger(__name__)

_ENROL_OUTCOMES = (
    EnrolOutcome.ENROLLED,
    EnrolOutcome.UNKNOWN_TOKEN,
    EnrolOutcome.EXPIRED,
    EnrolOutcome.QUOTA_USED,
    EnrolOutcome.DEVICE_EXISTS,
    EnrolOutcome.REVOKED,
)

_OUTCOMES: tuple[IngestOutcome, ...] = ("accepted", "duplicate", "over_budget", "repeat")


@contextlib.asynccontextmanager
async def _errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except RedisError as exc:
        raise StoreError(f"redis {what}: {exc}") from exc


class RedisStore(Store):
    def __init__(self, url: str, *, prefix: str = "eibert:", require_durable: bool = False) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise StoreError(f"not a redis URL: {url!r}")
        self.url = url
        self.prefix = prefix
        self.require_durable = require_durable
        self._r: aioredis.Redis | None = None
        self._rb: aioredis.Redis | None = None  # the same server without decoding: blob bytes are not text

    @property
    def r(self) -> aioredis.Redis:
        if self._r is None:
            raise StoreError("store is not open")
        return self._r

    def k(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    async def open(self) -> None:
        self._r = aioredis.Redis.from_url(self.url, decode_responses=True, health_check_interval=30)
        self._rb = aioredis.Redis.from_url(self.url, decode_responses=False, health_check_interval=30)
        self._create_device = self._r.register_script(scripts.CREATE_DEVICE)
        self._put_version = self._r.register_script(scripts.PUT_VERSION)
        self._cas_rollout = self._r.register_script(scripts.CAS_ROLLOUT)
        self._ingest_script = self._r.register_script(scripts.INGEST)
        self._enrol = self._r.register_script(scripts.ENROL)
        self._renew = self._r.register_script(scripts.RENEW)
        self._revoke_device = self._r.register_script(scripts.REVOKE_DEVICE)
        await self.ping()
        durable, text = await self._durability()
        if not durable:
            if self.require_durable:
                await self.close()
                raise StoreError(f"redis at {self.url} may lose acknowledged writes ({text}); refusing to start")
            log.warning("redis may lose acknowledged writes on a crash: %s", text)

    async def close(self) -> None:
        for client in (self._r, self._rb):
            if client is not None:
                await client.aclose()
        self._r = self._rb = None

    async def ping(self) -> None:
        async with _errors("ping"):
            await self.r.ping()

    async def _durability(self) -> tuple[bool, str]:
        try:
            async with _errors("config"):
                aof = (await self.r.config_get("appendonly")).get("appendonly")
                fsync = (await self.r.config_get("appendfsync")).get("appendfsync")
        except StoreError as exc:
            if isinstance(exc.__cause__, ResponseError):  # CONFIG disabled (managed Redis): cannot tell
                return False, "unknown (CONFIG GET is not allowed)"
            raise
        durable = aof == "yes" and fsync == "always"
        return durable, f"appendonly={aof}, appendfsync={fsync}"

    async def durability(self) -> str:
        durable, text = await self._durability()
        return f"redis {text}: " + ("fsynced before acknowledged" if durable else "NOT fsynced before acknowledged")

    # devices ---------------------------------------------------------------------------------------------
    async def create_device(self, device_id: str, token_hash: str) -> bool:
        async with _errors("create_device"):
            keys = [self.k("dev:", device_id), self.k("tok:", token_hash)]
            return bool(await self._create_device(keys=keys, args=[token_hash, device_id]))

    async def device_for_token(self, token_hash: str) -> str | None:
        async with _errors("device_for_token"):
            return await self.r.get(self.k("tok:", token_hash))

    async def create_enrolment_token(self, record: EnrolmentTokenRecord) -> None:
        fields = {"max": record.max_devices, "used": 0, "exp": repr(record.expires_at), "label": record.label}
        async with _errors("create_enrolment_token"), self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.k("etok:", record.token_hash), mapping=fields)  # kept after expiry: the operator's record
            pipe.zadd(self.k("etoks"), {record.token_hash: record.expires_at})
            await pipe.execute()

    async def list_enrolment_tokens(self) -> list[EnrolmentTokenRecord]:
        async with _errors("list_enrolment_tokens"):
            hashes = await self.r.zrange(self.k("etoks"), 0, -1)
            async with self.r.pipeline(transaction=False) as pipe:
                for h in hashes:
                    pipe.hgetall(self.k("etok:", h))
                rows = await pipe.execute()
        return [
            EnrolmentTokenRecord(
                token_hash=h,
                max_devices=int(row["max"]),
                expires_at=float(row["exp"]),
                label=row.get("label", ""),
                used=int(row.get("used", 0)),
                revoked=row.get("revoked") == "1",
            )
            for h, row in zip(hashes, rows, strict=True)
            if row
        ]

    async def revoke_enrolment_token(self, token_hash: str) -> bool:
        key = self.k("etok:", token_hash)
        async with _errors("revoke_enrolment_token"):
            if not await self.r.exists(key):
                return False
            await self.r.hset(key, "revoked", "1")
        return True

    async def enrol_device(
        self,
        device_id: str,
        device_token_hash: str,
        enrolment_token_hash: str,
        *,
        now: float,
        token_expires_at: float | None = None,
    ) -> EnrolOutcome:
        keys = [self.k("etok:", enrolment_token_hash), self.k("dev:", device_id), self.k("tok:", device_token_hash)]
        expiry_ms = 0 if token_expires_at is None else int(token_expires_at * 1000)
        async with _errors("enrol_device"):
            code = await self._enrol(keys=keys, args=[repr(now), device_token_hash, device_id, expiry_ms])
        return _ENROL_OUTCOMES[int(code)]

    async def renew_device_token(self, device_id: str, old_hash: str, new_hash: str, *, expires_at: float) -> bool:
        keys = [self.k("dev:", device_id), self.k("tok:", old_hash), self.k("tok:", new_hash)]
        async with _errors("renew_device_token"):
            return bool(await self._renew(keys=keys, args=[device_id, old_hash, new_hash, int(expires_at * 1000)]))

    async def revoke_device(self, device_id: str) -> bool:
        async with _errors("revoke_device"):
            return bool(await self._revoke_device(keys=[self.k("dev:", device_id)], args=[self.k("tok:")]))

    async def hit_rate(self, key: str, *, limit: int, window_s: int, now: float) -> float | None:
        start = now - now % window_s
        async with _errors("hit_rate"), self.r.pipeline(transaction=True) as pipe:
            k = self.k("rl:", f"{key}|{int(start)}")
            pipe.incr(k)
            pipe.expire(k, window_s + 1)
            count, _ = await pipe.execute()
        return None if int(count) <= limit else start + window_s - now

    async def claim(self, owner: str) -> str:
        async with _errors("claim"), self.r.pipeline(transaction=True) as pipe:
            pipe.set(self.k("owner"), owner, nx=True)
            pipe.get(self.k("owner"))
            _, stored = await pipe.execute()
        return str(stored)

    async def add_rotation(self, version: int, statement: str) -> bool:
        async with _errors("add_rotation"):
            return bool(await self.r.hsetnx(self.k("rotations"), str(version), statement))

    async def rotations(self) -> list[str]:
        async with _errors("rotations"):
            stored = await self.r.hgetall(self.k("rotations"))
        return [stored[v] for v in sorted(stored, key=int)]

    async def clock_offset(self) -> int:
        async with _errors("clock_offset"):
            raw = await self.r.get(self.k("clock"))
        return 0 if raw is None else int(raw)

    async def advance_clock(self, days: int) -> int:
        if days < 1:
            raise StoreError("the cloud clock only moves forward")
        async with _errors("advance_clock"):
            return int(await self.r.incrby(self.k("clock"), days))

    async def _device_row(self, device_id: str, token_hash: str) -> tuple[str | None, str | None, str | None]:
        async with _errors("device_view"):
            stored, owner, state = await self.r.mget(
                self.k("dev:", device_id), self.k("tok:", token_hash), self.k("rollout")
            )
        return stored, owner, state

    # versions --------------------------------------------------------------------------------------------
    async def put_version(self, record: VersionRecord) -> tuple[VersionRecord, bool]:
        async with _errors("put_version"):
            existing = await self._put_version(
                keys=[self.k("ver:", record.version), self.k("versions"), self.k("verseq")],
                args=[record.model_dump_json(), record.version],
            )
        if existing is None:
            return record, True
        return VersionRecord.model_validate_json(existing), False

    async def get_version(self, version: str) -> VersionRecord | None:
        async with _errors("get_version"):
            raw = await self.r.get(self.k("ver:", version))
        return None if raw is None else VersionRecord.model_validate_json(raw)

    async def list_versions(self, offset: int, limit: int) -> tuple[list[VersionRecord], int]:
        async with _errors("list_versions"):
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.zcard(self.k("versions"))
                pipe.zrange(self.k("versions"), offset, offset + limit - 1)
                total, names = await pipe.execute()
            raws = await self.r.mget([self.k("ver:", n) for n in names]) if names else []
        return [VersionRecord.model_validate_json(r) for r in raws if r is not None], int(total)

    # rollout ---------------------------------------------------------------------------------------------
    async def get_rollout(self) -> RolloutState:
        async with _errors("get_rollout"):
            return parse_rollout(await self.r.get(self.k("rollout")))

    async def cas_rollout(self, expected_generation: int, state: RolloutState) -> bool:
        async with _errors("cas_rollout"):
            ok = await self._cas_rollout(keys=[self.k("rollout")], args=[expected_generation, state.model_dump_json()])
        return bool(ok)

    # telemetry -------------------------------------------------------------------------------------------
    async def _ingest(
        self, device_id: str, reports: Sequence[PreparedReport], budget_micro: int, ttl_days: int, server_day: str
    ) -> list[IngestOutcome]:
        today = day_number(server_day)
        keys = [self.k("cells"), self.k("seen:", device_id), self.k("eps:", f"{device_id}|{server_day}")]
        ttl_s = max(1, ttl_days) * 86400 + 86400
        args: list[str | int] = [device_id, budget_micro, ttl_s, len(reports), today, today - ttl_days]
        for r in reports:
            label = r.cell_label()
            keys += [self.k("cell:", label), self.k("devs:", r.group.label()), self.k("epsl:", f"{device_id}|{r.day}")]
            args += [r.report_id, r.cost_micro, label, len(r.support), *r.support]
        async with _errors("ingest"):
            codes = await self._ingest_script(keys=keys, args=args)
        return [_OUTCOMES[int(c)] for c in codes]

    async def record_offer(self, device_id: str, version: str) -> None:
        async with _errors("record_offer"):
            await self.r.sadd(self.k("offered:", device_id), version)

    async def offered_versions(self, device_id: str) -> frozenset[str]:
        async with _errors("offered_versions"):
            return frozenset(await self.r.smembers(self.k("offered:", device_id)))

    async def spent(self, device_id: str, day: str) -> int:
        async with _errors("spent"):
            raw = await self.r.get(self.k("eps:", f"{device_id}|{day}"))
        return 0 if raw is None else int(raw)

    async def put_release(self, group_label: str, body: str) -> str:
        async with _errors("put_release"), self.r.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.k("releases"), group_label, body)
            pipe.hget(self.k("releases"), group_label)
            _, stored = await pipe.execute()
        return str(stored)

    async def releases(self, group_labels: Sequence[str]) -> dict[str, str]:
        labels = list(dict.fromkeys(group_labels))
        if not labels:
            return {}
        async with _errors("releases"):
            bodies = await self.r.hmget(self.k("releases"), labels)
        return {g: b for g, b in zip(labels, bodies, strict=True) if b is not None}

    async def _fleet_rows(self) -> tuple[dict[str, tuple[int, dict[int, int]]], dict[str, int]]:
        async with _errors("fleet"):
            labels = sorted(await self.r.smembers(self.k("cells")))
            groups = sorted({label.rsplit("|", 2)[0] for label in labels})
            async with self.r.pipeline(transaction=True) as pipe:
                for label in labels:
                    pipe.hgetall(self.k("cell:", label))
                for g in groups:
                    pipe.scard(self.k("devs:", g))
                replies = await pipe.execute()
        cells: dict[str, tuple[int, dict[int, int]]] = {}
        for label, h in zip(labels, replies[: len(labels)], strict=True):
            n = int(h.pop("n", 0))
            cells[label] = (n, {int(i): int(c) for i, c in h.items()})
        return cells, {g: int(c) for g, c in zip(groups, replies[len(labels) :], strict=True)}

    # blobs -----------------------------------------------------------------------------------------------
    @property
    def rb(self) -> aioredis.Redis:
        if self._rb is None:
            raise StoreError("store is not open")
        return self._rb

    async def _put_blob(self, sha256: str, data: bytes) -> None:
        async with _errors("put_blob"):
            await self.rb.set(self.k("blob:", sha256), data, nx=True)

    async def _get_blob(self, sha256: str) -> bytes | None:
        async with _errors("get_blob"):
            return await self.rb.get(self.k("blob:", sha256))
