"""The `Store` interface: everything the cloud keeps besides bundle bytes, behind one async base class.

Two real implementations (`sqlite.py`, `redis.py`) pass one shared test suite. Every method that changes
more than one thing is atomic in the backend (one SQLite transaction, one Redis Lua script), and returns only
after the backend has the change (SQLite: committed with synchronous=FULL; Redis: durable if the server runs
with appendfsync always, which `durability()` reports).
"""

from __future__ import annotations

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
        self, device_id: str, reports: Sequence[PreparedReport], *, budget_micro: int, ttl_days: int
    ) -> list[IngestOutcome]:
        """Apply reports in order, atomically: duplicate ids (per device) are acknowledged and not counted again;
        a report that would take the device's spend for its day over `budget_micro` is refused; others charge
        the ledger, count into their cell and add the device to their group. Ids and ledgers expire after
        `ttl_days` (reports for older days are refused before they reach the store)."""

    @abstractmethod
    async def spent(self, device_id: str, day: str) -> int:
        """Epsilon (millionths) the device has spent on `day`."""

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
