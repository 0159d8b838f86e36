"""The `Store` interface: everything the cloud keeps besides bundle bytes, behind one async base class.

Two real implementations (`sqlite.py`, `redis.py`) pass one shared test suite. Every method that changes
more than one thing is atomic in the backend (one SQLite transaction, one Redis Lua script), and returns only
after the backend has the change (SQLite: committed with synchronous=FULL; Redis: durable if the server runs
with appendfsync always, which `durability()` reports).
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from service.cloud.rollout import RolloutState


class VersionRecord(BaseModel):
    """An immutable registered model version (its bundle bytes live in the blob store under bundle_sha256)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    name: str
    manifest: dict[str, Any]  # manifest.json exactly as in the bundle; the signature covers its canonical JSON
    signature: str
    public_key: str  # base64 raw Ed25519 key that made `signature`
    bundle_sha256: str
    bundle_bytes: int
    model_bytes: int
    registered_at: str


class DeviceAuth(enum.Enum):
    OK = "ok"  # the token belongs to this device
    OTHER_DEVICE = "other"  # a valid token, but of another device: 403
    UNKNOWN = "unknown"  # no device has this token: 401

    @classmethod
    def judge(cls, stored_hash: str | None, token_hash: str, owner: str | None) -> DeviceAuth:
        """One decision for every backend: `stored_hash` is this device's token hash, `owner` the device that
        holds `token_hash` (if any). Constant-time comparison, so timing does not leak the stored hash."""
        if stored_hash is not None and hmac.compare_digest(stored_hash, token_hash):
            return cls.OK
        return cls.UNKNOWN if owner is None else cls.OTHER_DEVICE


@dataclass(frozen=True)
class GroupKey:
    """What aggregates are kept per, and what k_min counts distinct devices of."""

    metric: str
    model_version: str
    day: str

    def label(self) -> str:
        return f"{self.metric}|{self.model_version}|{self.day}"


@dataclass(frozen=True)
class PreparedReport:
    """A validated report reduced to what the store needs: no payload, just the categories it supports."""

    report_id: str
    group: GroupKey
    mechanism: str
    epsilon_label: str  # "0.30"
    cost_micro: int  # epsilon in millionths
    support: tuple[int, ...]

    @property
    def day(self) -> str:
        return self.group.day

    def cell_label(self) -> str:
        return f"{self.group.label()}|{self.mechanism}|{self.epsilon_label}"


IngestOutcome = Literal["accepted", "duplicate", "over_budget"]


class EnrolOutcome(enum.Enum):
    """What `Store.enrol_device` decided, in the order it checks (the route maps each to a status)."""

    ENROLLED = "enrolled"  # 201: the device exists now and the token's use count went up by one
    UNKNOWN_TOKEN = "unknown_token"  # 401: no enrolment token has this hash
    EXPIRED = "expired"  # 401: the enrolment token is past its expiry
    QUOTA_USED = "quota_used"  # 403: the token already enrolled max_devices devices
    DEVICE_EXISTS = "device_exists"  # 409: the device id is taken (nothing changed, no quota used)


@dataclass(frozen=True)
class EnrolmentTokenRecord:
    """An operator-issued enrolment credential; the store keeps only the sha256 of the token."""

    token_hash: str
    max_devices: int
    expires_at: float  # unix seconds
    label: str


@dataclass(frozen=True)
class CellAggregate:
    group: GroupKey
    mechanism: str
    epsilon_label: str
    n: int
    counts: dict[int, int]


@dataclass(frozen=True)
class FleetAggregate:
    group: GroupKey
    devices: int  # distinct devices with at least one accepted report
    cells: tuple[CellAggregate, ...]


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


def parse_cell_label(label: str) -> tuple[GroupKey, str, str]:
    metric, version, day, mechanism, eps = label.split("|")
    return GroupKey(metric, version, day), mechanism, eps


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
    async def device_for_token(self, token_hash: str) -> str | None: ...

    @abstractmethod
    async def create_enrolment_token(self, record: EnrolmentTokenRecord) -> None:
        """Store a new enrolment token (its hash is a fresh 256-bit secret's, so it never collides)."""

    @abstractmethod
    async def enrol_device(
        self, device_id: str, device_token_hash: str, enrolment_token_hash: str, *, now: float
    ) -> EnrolOutcome:
        """Atomically: check the enrolment token (exists, unexpired at `now`, quota left) and the device id, then
        create the device and count it against the token's quota. Nothing changes unless ENROLLED."""

    @abstractmethod
    async def hit_rate(self, key: str, *, limit: int, window_s: int, now: float) -> float | None:
        """Count one event for `key` in the fixed window holding `now`; None if within `limit`, else the seconds
        until the window ends (the Retry-After). Shared by every replica, since it lives in the store."""

    # cloud clock -----------------------------------------------------------------------------------------
    @abstractmethod
    async def clock_offset(self) -> int:
        """Whole days the cloud's clock is ahead of UTC (0 unless a dev-mode admin advanced it)."""

    @abstractmethod
    async def advance_clock(self, days: int) -> int:
        """Add `days` (>= 1) to the offset atomically and return the new offset: it only moves forward."""

    @abstractmethod
    async def device_view(self, device_id: str, token_hash: str) -> tuple[DeviceAuth, RolloutState]:
        """Authenticate a device and read the rollout state in one round trip (the hot polling path)."""

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
    @abstractmethod
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
        acknowledged, not counted again. A report that would take the device's spend on the server day `day`
        over `budget_micro`, or its spend on reports labelled with the report's own day over it, is refused
        (and not remembered, so a retry is judged again). Accepted reports charge both ledgers, count into
        their cell (the label picks the group) and add the device to their group. An id is kept `ttl_days`
        server days after it was accepted, then forgotten (see `privacy.py` for why that is long enough)."""

    @abstractmethod
    async def spent(self, device_id: str, day: str) -> int:
        """Epsilon (millionths) the device has been charged on server day `day`."""

    @abstractmethod
    async def put_release(self, group_label: str, body: str) -> str:
        """Store the release of a group unless one is stored already; return the stored one (put-if-absent)."""

    @abstractmethod
    async def releases(self, group_labels: Sequence[str]) -> dict[str, str]:
        """The stored releases of these groups (group label -> body); groups without one are left out."""

    @abstractmethod
    async def fleet(
        self, *, metric: str | None = None, model_version: str | None = None, day: str | None = None
    ) -> list[FleetAggregate]:
        """Aggregates with distinct-device counts, optionally filtered."""


def assemble_fleet(
    cells: dict[str, tuple[int, dict[int, int]]],
    device_counts: dict[str, int],
    *,
    metric: str | None,
    model_version: str | None,
    day: str | None,
) -> list[FleetAggregate]:
    """Group raw cells (label -> (n, support counts)) by (metric, version, day), filtered, oldest day first."""
    groups: dict[GroupKey, list[CellAggregate]] = {}
    for label, (n, counts) in cells.items():
        group, mechanism, eps = parse_cell_label(label)
        if metric is not None and group.metric != metric:
            continue
        if model_version is not None and group.model_version != model_version:
            continue
        if day is not None and group.day != day:
            continue
        groups.setdefault(group, []).append(CellAggregate(group, mechanism, eps, n, counts))
    return [
        FleetAggregate(group=g, devices=int(device_counts.get(g.label(), 0)), cells=tuple(cs))
        for g, cs in sorted(groups.items(), key=lambda kv: (kv[0].day, kv[0].metric, kv[0].model_version))
    ]
