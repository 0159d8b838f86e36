"""The records the `Store` keeps and answers with: plain data, no I/O (the interface itself is `base.py`)."""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class VersionRecord(BaseModel):
    """An immutable registered model version (its archive is the store's blob named bundle_sha256)."""

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
    def judge(cls, device_id: str, stored_hash: str | None, token_hash: str, owner: str | None) -> DeviceAuth:
        """One decision for every backend: `stored_hash` is this device's token hash, `owner` the device that
        holds `token_hash` (if any: an expired or revoked token has none). Constant-time comparison, so timing
        does not leak the stored hash."""
        if owner is None:
            return cls.UNKNOWN
        if stored_hash is not None and hmac.compare_digest(stored_hash, token_hash) and owner == device_id:
            return cls.OK
        return cls.OTHER_DEVICE


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


IngestOutcome = Literal["accepted", "duplicate", "over_budget", "repeat"]  # repeat: device already in the group


class EnrolOutcome(enum.Enum):
    """What `Store.enrol_device` decided, in the order it checks (the route maps each to a status)."""

    ENROLLED = "enrolled"  # 201: the device exists now and the token's use count went up by one
    UNKNOWN_TOKEN = "unknown_token"  # 401: no enrolment token has this hash
    EXPIRED = "expired"  # 401: the enrolment token is past its expiry
    REVOKED = "revoked"  # 401: the operator revoked the enrolment token
    QUOTA_USED = "quota_used"  # 403: the token already enrolled max_devices devices
    DEVICE_EXISTS = "device_exists"  # 409: the device id is taken (nothing changed, no quota used)


@dataclass(frozen=True)
class EnrolmentTokenRecord:
    """An operator-issued enrolment credential; the store keeps only the sha256 of the token."""

    token_hash: str  # also its public id: it names the token to the operator, and cannot be used to enrol
    max_devices: int
    expires_at: float  # unix seconds
    label: str
    used: int = 0  # devices enrolled with it
    revoked: bool = False


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


def parse_cell_label(label: str) -> tuple[GroupKey, str, str]:
    metric, version, day, mechanism, eps = label.split("|")
    return GroupKey(metric, version, day), mechanism, eps


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
