"""Request and response models of the cloud API (XPublic = what the API shows, lists hold data + count)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VERSION_PATTERN = r"^[A-Za-z0-9_.+-]{1,129}$"


class ModelVersionPublic(BaseModel):
    version: str
    name: str
    manifest: dict[str, Any]
    signature: str
    public_key: str
    bundle_url: str
    bundle_sha256: str
    bundle_bytes: int
    model_bytes: int
    registered_at: str


class ModelVersionsPublic(BaseModel):
    data: list[ModelVersionPublic]
    count: int  # total registered, not just this page


class RolloutUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(pattern=VERSION_PATTERN)
    percent: int = Field(ge=0, le=100)


class RolloutPublic(BaseModel):
    stable: str | None
    candidate: str | None
    percent: int
    previous_stable: str | None
    generation: int
    updated_at: str | None


class EstimatePublic(BaseModel):
    category: str
    estimate: float  # consistent (Norm-Sub): >= 0, and a group's estimates sum to one
    std_error: float  # of the unbiased estimate
    ci_low: float  # 95%: the unbiased estimate's interval in [0, 1], widened to contain `estimate`
    ci_high: float
    raw_estimate: float | None = None  # unbiased (may be < 0 or > 1); None in releases stored before it existed


class FleetMetricPublic(BaseModel):
    metric: str
    model_version: str
    day: str
    status: Literal["released", "withheld", "open"]  # open: the day can still take reports, nothing shown
    devices: int | None = None  # only when released: small counts are not disclosed
    reports: int | None = None
    estimates: list[EstimatePublic] | None = None
    reason: str | None = None


class ABSidePublic(BaseModel):
    version: str
    estimate: float  # report-weighted mean of the released (consistent) estimates of the version's groups
    std_error: float  # of the pooled unbiased estimate
    reports: int
    groups: int


class ABRowPublic(BaseModel):
    metric: str
    category: str
    baseline: ABSidePublic | None = None  # None: no released group of that version in this response
    candidate: ABSidePublic | None = None
    difference: float | None = None  # candidate - baseline
    ci_low: float | None = None  # 95%, of the unbiased difference, widened to contain `difference`
    ci_high: float | None = None
    # The smallest true difference this readout detects with 80% power at a two-sided 5% level, from the two
    # sides' standard errors: (1.96 + 0.84) * sqrt(se_a^2 + se_b^2). A smaller effect reads as "no difference".
    min_detectable: float | None = None


class ABReadoutPublic(BaseModel):
    baseline: str
    candidate: str
    basis: Literal["canary", "last_rollout"]  # candidate beside stable, or stable beside the one it replaced
    rows: list[ABRowPublic]


class FleetMetricsPublic(BaseModel):
    k_min: int
    confidence: float = 0.95
    data: list[FleetMetricPublic]
    count: int
    ab: ABReadoutPublic | None = None  # None until a rollout has two versions to compare


class SigningKeyPublic(BaseModel):
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str  # base64 raw 32 bytes; devices pin it out of band, this is for convenience and checks


class EnrolmentTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_devices: int = Field(ge=1)  # at most Settings.max_enrolment_token_devices
    expires_in_s: int = Field(default=7 * 86400, ge=60, le=366 * 86400)
    label: str = Field(default="", max_length=128, pattern=r"^[A-Za-z0-9 _.:-]*$")  # for the operator's records


class EnrolmentTokenPublic(BaseModel):
    token: str  # shown once; the cloud keeps only its sha256
    max_devices: int
    expires_at: str
    label: str
