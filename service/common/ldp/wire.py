"""The wire format of LDP telemetry: payloads, reports, batches and acks, and the device-side `encode_report`.

A report travels as a `TelemetryReport`: report id, metric, mechanism, epsilon, model version, day and the
encoded payload; nothing else (``extra="forbid"`` on both sides).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.common.ldp.catalogue import METRICS, Mechanism, MetricName
from service.common.ldp.mechanisms import OLH_SEED_BITS, olh_g, olh_perturb, oue_perturb, rr_perturb

__all__ = [
    "MAX_EPSILON",
    "MAX_REPORTS_PER_BATCH",
    "MIN_EPSILON",
    "OLHPayload",
    "OUEPayload",
    "Payload",
    "RRPayload",
    "ReportResult",
    "ReportStatus",
    "TelemetryAck",
    "TelemetryBatch",
    "TelemetryReport",
    "encode_report",
]

MIN_EPSILON = 0.01
MAX_EPSILON = 4.0
MAX_REPORTS_PER_BATCH = 500


class RRPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bit: int = Field(ge=0, le=1)


class OUEPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: str = Field(pattern=r"^[01]{1,64}$")  # one char per category, in MetricSpec.categories order


class OLHPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, lt=1 << OLH_SEED_BITS)
    value: int = Field(ge=0, lt=1 << 20)


Payload = RRPayload | OUEPayload | OLHPayload
_PAYLOAD_TYPE: dict[str, type[BaseModel]] = {"rr": RRPayload, "oue": OUEPayload, "olh": OLHPayload}


class TelemetryReport(BaseModel):
    """One locally-privatised report. The model version and the day travel in the clear; nothing else does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    report_id: uuid.UUID
    metric: MetricName
    mechanism: Mechanism
    epsilon: float = Field(ge=MIN_EPSILON, le=MAX_EPSILON)
    model_version: str = Field(min_length=1, max_length=129, pattern=r"^[A-Za-z0-9_.+-]+$")
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    payload: Payload

    @field_validator("epsilon")
    @classmethod
    def _two_decimals(cls, v: float) -> float:
        # aggregates are kept per epsilon, so epsilons are coarse (0.01 steps) to bound the number of cells
        if abs(v * 100 - round(v * 100)) > 1e-9:
            raise ValueError("epsilon must be a multiple of 0.01")
        return round(v, 2)

    @field_validator("day")
    @classmethod
    def _real_date(cls, v: str) -> str:
        dt.date.fromisoformat(v)  # raises ValueError on 2024-02-30
        return v

    @model_validator(mode="after")
    def _payload_fits(self) -> TelemetryReport:
        spec = METRICS[self.metric]
        if self.mechanism not in spec.mechanisms:
            raise ValueError(f"metric {self.metric} takes mechanism {' or '.join(spec.mechanisms)}")
        if not isinstance(self.payload, _PAYLOAD_TYPE[self.mechanism]):
            raise ValueError(f"mechanism {self.mechanism} needs a {_PAYLOAD_TYPE[self.mechanism].__name__}")
        if isinstance(self.payload, OUEPayload) and len(self.payload.bits) != spec.d:
            raise ValueError(f"oue payload for {self.metric} must have {spec.d} bits")
        if isinstance(self.payload, OLHPayload) and self.payload.value >= olh_g(self.epsilon):
            raise ValueError(f"olh value must be < g={olh_g(self.epsilon)} at epsilon {self.epsilon}")
        return self


class TelemetryBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reports: list[TelemetryReport] = Field(min_length=1, max_length=MAX_REPORTS_PER_BATCH)


ReportStatus = Literal["accepted", "duplicate", "refused"]


class ReportResult(BaseModel):
    report_id: str
    status: ReportStatus
    reason: str | None = None


class TelemetryAck(BaseModel):
    """Per-report outcome. `accepted` and `duplicate` both mean "counted exactly once": delete from the outbox."""

    results: list[ReportResult]
    accepted: int
    duplicate: int
    refused: int


def encode_report(
    metric: str,
    value: str | bool,
    *,
    model_version: str,
    day: str,
    epsilon: float | None = None,
    mechanism: Mechanism | None = None,
    rng: np.random.Generator | None = None,
    report_id: uuid.UUID | None = None,
) -> TelemetryReport:
    """Device side: privatise one value into a report. The raw value never leaves this function."""
    spec = METRICS[metric]
    mech = mechanism or spec.default_mechanism
    eps = spec.default_epsilon if epsilon is None else epsilon
    index = np.array([spec.index(value)])
    payload: Payload
    if mech == "rr":
        if spec.d != 2:
            raise ValueError("randomized response is for binary metrics")
        payload = RRPayload(bit=int(rr_perturb(index.astype(bool), eps, rng)[0]))
    elif mech == "oue":
        payload = OUEPayload(bits="".join("1" if b else "0" for b in oue_perturb(index, spec.d, eps, rng)[0]))
    else:
        seeds, values = olh_perturb(index, eps, rng)
        payload = OLHPayload(seed=int(seeds[0]), value=int(values[0]))
    rid = report_id or (uuid.uuid4() if rng is None else uuid.UUID(bytes=rng.bytes(16), version=4))
    return TelemetryReport(
        report_id=rid,
        metric=metric,  # type: ignore[arg-type]
        mechanism=mech,
        epsilon=eps,
        model_version=model_version,
        day=day,
        payload=payload,
    )
