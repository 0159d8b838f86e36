"""Wire models between devices (edge nodes, simulated devices) and the cloud.

Contract (also in docs): a device enrols once, then polls `GET /v1/devices/{id}/model` with its bearer
token and `If-None-Match`; a 200 is a `service.common.offer.SignedOffer` (verified before it is parsed), whose
payload names the version, rollout generation, expiry and manifest; each file the manifest pins is then
fetched by content address from `blob_path(sha256)`, bounded by its signed length.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.common.offer import SignedOffer

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class DeviceEnrolRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)


class DeviceEnrolResponse(BaseModel):
    """A device token (shown once) and when it stops working: renew it before then (`token_path`)."""

    device_id: str
    token: str
    expires_at: int | None = None  # unix seconds; None from a cloud whose tokens do not expire


def token_path(device_id: str) -> str:
    """Where a device renews its token (POST, with the current one): a new token, the old one stops at once."""
    return f"/v1/devices/{device_id}/token"


DeviceModelResponse = SignedOffer  # the body of a 200 on GET /v1/devices/{id}/model

BLOBS_PREFIX = "/v1/blobs"


def blob_path(sha256: str) -> str:
    """Where a device fetches a file by content address (relative to the cloud base URL)."""
    return f"{BLOBS_PREFIX}/{sha256}"
