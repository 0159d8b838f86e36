"""Wire models between devices (edge nodes, simulated devices) and the cloud.

Contract (also in docs): a device enrols once, then polls `GET /v1/devices/{id}/model` with its bearer
token and `If-None-Match`; a 200 names the version to run, its manifest and the cloud's Ed25519 signature
over `canonical_manifest_bytes(manifest)`; the bundle archive at `bundle_url` must hash to `bundle_sha256`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class DeviceEnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)


class DeviceEnrolResponse(BaseModel):
    device_id: str
    token: str


class DeviceModelResponse(BaseModel):
    """What a device should run. The ETag header of this response is what the device sends back."""

    version: str
    manifest: dict[str, Any]
    signature: str  # base64 Ed25519 over service.common.signing.canonical_manifest_bytes(manifest)
    bundle_url: str  # e.g. /v1/models/{version}/bundle, relative to the cloud base URL
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # sha256 of the archive bytes served there
    bundle_bytes: int = Field(ge=0)
