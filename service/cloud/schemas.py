"""Request and response models of the cloud API (XPublic = what the API shows, lists hold data + count)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# GET /v1/fleet/metrics is read by anyone (the simulators' summary too), so its models live in service.common
from service.common.fleet_metrics import (  # noqa: F401 - re-exported: the cloud's routes and privacy use them
    ABReadoutPublic,
    ABRowPublic,
    ABSidePublic,
    EstimatePublic,
    FleetMetricPublic,
    FleetMetricsPublic,
)

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


class SigningKeyPublic(BaseModel):
    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str  # base64 raw 32 bytes; devices pin it out of band, this is for convenience and checks
    deployment: str = "default"  # what this cloud's offers and key rotations name
    key_version: int = 1  # its number in the rotation chain (GET /v1/keys/rotations); the pinned key is 1


class EnrolmentTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_devices: int = Field(ge=1)  # at most Settings.max_enrolment_token_devices
    expires_in_s: int = Field(default=7 * 86400, ge=60, le=366 * 86400)
    label: str = Field(default="", max_length=128, pattern=r"^[A-Za-z0-9 _.:-]*$")  # for the operator's records


class EnrolmentTokenPublic(BaseModel):
    token: str  # shown once; the cloud keeps only its sha256
    id: str = ""  # that sha256: names the token in listings and revocation
    max_devices: int
    expires_at: str
    label: str


class EnrolmentTokenInfoPublic(BaseModel):
    """An issued enrolment token as the operator lists it: never the token itself, only its id (its sha256)."""

    id: str  # sha256 of the token: what `eibert enrolment-tokens revoke` takes
    label: str
    max_devices: int
    used: int
    expires_at: str
    revoked: bool


class EnrolmentTokensPublic(BaseModel):
    data: list[EnrolmentTokenInfoPublic]
    count: int


class KeyRotationsPublic(BaseModel):
    data: list[dict[str, Any]]  # signed rotation statements (service/common/key_rotation.py), oldest first
    count: int
