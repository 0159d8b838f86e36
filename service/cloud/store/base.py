"""The `Store` interface: everything the cloud keeps, bundle bytes included, behind one async base class.

Two real implementations (`sqlite.py`, `redis.py`) pass one shared test suite. Blobs (bundle archives and each
bundle file) live in the store too, content-addressed by sha256 and written once, so every replica on one store
serves every upload and a replica keeps nothing of its own (its local blob directory is only a cache).
Every method that changes more than one thing is atomic in the backend (one SQLite transaction, one Redis Lua
script), and returns only after the backend has the change (SQLite: committed with synchronous=FULL; Redis:
durable if the server runs with appendfsync always, which `durability()` reports).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

from service.cloud.rollout import RolloutState
from service.cloud.store.records import (
    DeviceAuth,
    EnrolmentTokenRecord,
    EnrolOutcome,
    FleetAggregate,
    IngestOutcome,
    PreparedReport,
    VersionRecord,
    assemble_fleet,
)


@functools.lru_cache(maxsize=16)
def _parse_rollout(raw: str) -> RolloutState:
    return RolloutState.model_validate_json(raw)


def parse_rollout(raw: str | None) -> RolloutState:
    """Rollout state from its stored JSON; memoised on the raw text (immutable model), since every device poll
    reads the same few hundred bytes and parsing them would be most of the poll's CPU."""
    return RolloutState() if raw is None else _parse_rollout(raw)


def day_number(day: str) -> int:
    """A day as an integer (proleptic ordinal), so backends can compare and trim by it."""
    return dt.date.fromisoformat(day).toordinal()


def utc_today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def check_sha256(sha256: str) -> str:
    """`sha256` if it is a lowercase hex sha256 digest (a blob's name), else ValueError: names reach the store
    from URLs, and a backend must never see a key it did not make."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class Store(ABC):
    """Cloud state. Methods are keyword-light and typed; backends never see HTTP or pydantic request models."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise StoreError unless the backend answers."""

    @abstractmethod
    async def durability(self) -> str:
        """A short human description of how durable an acknowledged write is."""

    # devices ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def create_device(self, device_id: str, token_hash: str) -> bool:
        """Enrol; False if the device id already exists (nothing changed)."""

    @abstractmethod
    async def device_for_token(self, token_hash: str) -> str | None:
        """The device holding this token, None if none does (unknown, expired or revoked): checked in the store
        on every call, so a revocation holds on every replica at once."""

    @abstractmethod
    async def create_enrolment_token(self, record: EnrolmentTokenRecord) -> None:
        """Store a new enrolment token (its hash is a fresh 256-bit secret's, so it never collides)."""

    @abstractmethod
    async def enrol_device(
        self,
        device_id: str,
        device_token_hash: str,
        enrolment_token_hash: str,
        *,
        now: float,
        token_expires_at: float | None = None,
    ) -> EnrolOutcome:
        """Atomically: check the enrolment token (exists, not revoked, unexpired at `now`, quota left) and the
        device id, then create the device, whose token stops working at `token_expires_at` (unix seconds), and
        count it against the token's quota. Nothing changes unless ENROLLED."""

    @abstractmethod
    async def renew_device_token(self, device_id: str, old_hash: str, new_hash: str, *, expires_at: float) -> bool:
        """Atomically replace the device's token `old_hash` (still valid) by `new_hash`, valid until
        `expires_at`; the old one stops working at once. False (nothing changed) unless `old_hash` is the
        device's current, unexpired token."""

    @abstractmethod
    async def revoke_device(self, device_id: str) -> bool:
        """The device's token stops working at once (everywhere: it is gone from the store) and its id stays
        taken, so it cannot be enrolled again; False if no such device."""

    @abstractmethod
    async def list_enrolment_tokens(self) -> list[EnrolmentTokenRecord]:
        """Every enrolment token issued (oldest first), with its use count and whether it was revoked."""

    @abstractmethod
    async def revoke_enrolment_token(self, token_hash: str) -> bool:
        """No further enrolment with this token (devices it enrolled keep theirs); False if no such token."""

    @abstractmethod
    async def hit_rate(self, key: str, *, limit: int, window_s: int, now: float) -> float | None:
        """Count one event for `key` in the fixed window holding `now`; None if within `limit`, else the seconds
        until the window ends (the Retry-After). Shared by every replica, since it lives in the store."""

    # what the store belongs to ---------------------------------------------------------------------------
    @abstractmethod
    async def claim(self, owner: str) -> str:
        """Mark the store as `owner`'s unless it is marked already (put-if-absent); return the mark it holds.
        A cloud refuses a store marked by another mode or deployment (`service.cloud.clock.StoreOwner`)."""

    # signing-key rotations (service/common/key_rotation.py) -----------------------------------------------
    @abstractmethod
    async def add_rotation(self, version: int, statement: str) -> bool:
        """Store the rotation statement to key `version` unless one is stored for it (then False)."""

    @abstractmethod
    async def rotations(self) -> list[str]:
        """Every stored rotation statement (JSON), oldest version first."""

    # cloud clock -----------------------------------------------------------------------------------------
    @abstractmethod
    async def clock_offset(self) -> int:
        """Whole days the cloud's clock is ahead of UTC (0 unless a dev-mode admin advanced it)."""

    @abstractmethod
    async def advance_clock(self, days: int) -> int:
        """Add `days` (>= 1) to the offset atomically and return the new offset: it only moves forward."""

    async def device_view(self, device_id: str, token_hash: str) -> tuple[DeviceAuth, RolloutState]:
        """Authenticate a device and read the rollout state in one round trip (the hot polling path)."""
        stored_hash, owner, state = await self._device_row(device_id, token_hash)
        return DeviceAuth.judge(device_id, stored_hash, token_hash, owner), parse_rollout(state)

    @abstractmethod
    async def _device_row(self, device_id: str, token_hash: str) -> tuple[str | None, str | None, str | None]:
        """In one read: this device's token hash, the device holding `token_hash` (None once it expired or was
        revoked), the rollout state JSON."""

    # versions --------------------------------------------------------------------------------------------
    @abstractmethod
    async def put_version(self, record: VersionRecord) -> tuple[VersionRecord, bool]:
        """Insert if absent; return (the stored record, created). Never overwrites."""

    @abstractmethod
    async def get_version(self, version: str) -> VersionRecord | None: ...

    @abstractmethod
    async def list_versions(self, offset: int, limit: int) -> tuple[list[VersionRecord], int]:
        """Registration order, oldest first; with the total count."""

    # rollout ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def get_rollout(self) -> RolloutState: ...

    @abstractmethod
    async def cas_rollout(self, expected_generation: int, state: RolloutState) -> bool:
        """Replace the rollout state iff its generation is still `expected_generation`."""

    # telemetry -------------------------------------------------------------------------------------------
    async def ingest(
        self,
        device_id: str,
        reports: Sequence[PreparedReport],
        *,
        budget_micro: int,
        ttl_days: int,
        day: str | None = None,
    ) -> list[IngestOutcome]:
        """Apply reports in order, atomically, as received on server day `day` (default: today's UTC date).

        A report id the device already used is a duplicate whatever day either report is labelled with:
        acknowledged, not counted again. A report for a group the device already counts in is a repeat: refused,
        since each device carries one report per group (what bounds how far one device can move a release). A
        report that would take the device's spend on the server day `day`
        over `budget_micro`, or its spend on reports labelled with the report's own day over it, is refused
        (and not remembered, so a retry is judged again). Accepted reports charge both ledgers, count into
        their cell (the label picks the group) and add the device to their group. An id is kept `ttl_days`
        server days after it was accepted, then forgotten (see `privacy.py` for why that is long enough)."""
        if not reports:
            return []
        return await self._ingest(device_id, reports, budget_micro, ttl_days, day or utc_today())

    @abstractmethod
    async def _ingest(
        self, device_id: str, reports: Sequence[PreparedReport], budget_micro: int, ttl_days: int, server_day: str
    ) -> list[IngestOutcome]:
        """`ingest` of at least one report, on a settled server day: one transaction or script per backend."""

    @abstractmethod
    async def record_offer(self, device_id: str, version: str) -> None:
        """Remember that `device_id` was offered `version` (a device may report only under such a version)."""

    @abstractmethod
    async def offered_versions(self, device_id: str) -> frozenset[str]:
        """Every version this device has been offered."""

    @abstractmethod
    async def spent(self, device_id: str, day: str) -> int:
        """Epsilon (millionths) the device has been charged on server day `day`."""

    @abstractmethod
    async def put_release(self, group_label: str, body: str) -> str:
        """Store the release of a group unless one is stored already; return the stored one (put-if-absent)."""

    @abstractmethod
    async def releases(self, group_labels: Sequence[str]) -> dict[str, str]:
        """The stored releases of these groups (group label -> body); groups without one are left out."""

    async def fleet(
        self, *, metric: str | None = None, model_version: str | None = None, day: str | None = None
    ) -> list[FleetAggregate]:
        """Aggregates with distinct-device counts, optionally filtered."""
        cells, device_counts = await self._fleet_rows()
        return assemble_fleet(cells, device_counts, metric=metric, model_version=model_version, day=day)

    @abstractmethod
    async def _fleet_rows(self) -> tuple[dict[str, tuple[int, dict[int, int]]], dict[str, int]]:
        """Every cell (label -> (n, support counts)) and every group's distinct-device count, in one read."""

    # blobs -----------------------------------------------------------------------------------------------
    async def put_blob(self, data: bytes) -> str:
        """Store `data` under its sha256 and return it. The name is computed here, never taken from a caller,
        so a stored blob always hashes to its name; written once (equal bytes again change nothing)."""
        sha = hashlib.sha256(data).hexdigest()
        await self._put_blob(sha, data)
        return sha

    async def get_blob(self, sha256: str) -> bytes | None:
        """The bytes stored under `sha256`, or None; ValueError if it is not a sha256 hex digest."""
        return await self._get_blob(check_sha256(sha256))

    @abstractmethod
    async def _put_blob(self, sha256: str, data: bytes) -> None:
        """Insert if absent (blobs are immutable); durable before it returns, like every other write."""

    @abstractmethod
    async def _get_blob(self, sha256: str) -> bytes | None: ...
