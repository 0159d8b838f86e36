"""How a simulated device follows rollouts: the edge updater's protocol and checks, minus its per-device disk.

The steps and their failure stages are those of `service.edge.updater.ModelUpdater` (enrol, poll with
If-None-Match, signature against the pinned key, manifest, download bounded by the announced size, sha256,
unpack, load), built from the same `service.common` primitives and raising the same `UpdateFailed`. What differs
is storage: a real edge node unpacks every bundle into its own state directory; a fleet of thousands in one
process cannot, so after the sha256 check the bytes go to the shared `ModelLibrary`. As in the edge updater,
the ETag is remembered only after a successful check, so a rejected download is retried at the next poll while
the old model keeps serving.

Version names: the cloud registers and offers a bundle by its manifest's `release_id` (`{name}-{version}`);
an offer naming anything else is refused, as the edge updater refuses it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from service.common.device_api import DeviceEnrolResponse, DeviceModelResponse
from service.common.errors import BundleError
from service.common.manifest import Manifest
from service.edge.updater import UpdateFailed, verified_offer_manifest
from simulators.runtime import ModelLibrary, SharedModel

log = logging.getLogger(__name__)

DEFAULT_MAX_BUNDLE_BYTES = 64 * 1024 * 1024

Outcome = Literal["not_modified", "up_to_date", "updated", "failed"]


@dataclass(frozen=True, slots=True)
class UpdateResult:
    outcome: Outcome
    serving: str  # the version serving after the check (unchanged on failure)
    offered: str | None = None
    stage: str | None = None  # failure stage, as in ModelUpdater
    error: str | None = None


class DeviceUpdater:
    def __init__(
        self,
        *,
        device_id: str,
        client: httpx.AsyncClient,
        public_key: Ed25519PublicKey,
        models: ModelLibrary,
        model: SharedModel,
        max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
        enrolment_token: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.client = client
        self.public_key = public_key
        self.models = models
        self.model = model
        self.max_bundle_bytes = max_bundle_bytes
        self.enrolment_token = enrolment_token  # operator-issued: the cloud refuses enrolment without one
        self.token: str | None = None
        self.etag: str | None = None
        self.offered: str | None = None

    async def enrol(self) -> bool:
        """POST /v1/devices once, with the enrolment token; False (retry later) if the cloud cannot be reached
        or refuses (including 429: the cloud's per-address enrolment rate limit)."""
        if self.token is not None:
            return True
        headers = {"Authorization": f"Bearer {self.enrolment_token}"} if self.enrolment_token else {}
        try:
            resp = await self.client.post("/v1/devices", json={"device_id": self.device_id}, headers=headers)
        except httpx.HTTPError as exc:
            log.debug("%s: enrolment failed: %s", self.device_id, exc)
            return False
        if resp.status_code not in (200, 201):
            log.warning("%s: enrolment refused: HTTP %d %s", self.device_id, resp.status_code, resp.text[:200])
            return False
        try:
            self.token = DeviceEnrolResponse.model_validate_json(resp.content).token
        except ValidationError:
            return False
        return True

    async def check(self) -> UpdateResult:
        """One update check; never raises for anything the network or the cloud can do."""
        try:
            return await self._check()
        except UpdateFailed as exc:
            return UpdateResult("failed", self.model.version, self.offered, exc.stage, str(exc))
        except BundleError as exc:
            return UpdateResult("failed", self.model.version, self.offered, "unpack", str(exc))
        except httpx.HTTPError as exc:
            return UpdateResult("failed", self.model.version, self.offered, "poll", f"{type(exc).__name__}: {exc}")

    async def _check(self) -> UpdateResult:
        if self.token is None and not await self.enrol():
            raise UpdateFailed("enrol", "not enrolled yet")
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        resp = await self.client.get(f"/v1/devices/{self.device_id}/model", headers=headers)
        if resp.status_code == 304:
            return UpdateResult("not_modified", self.model.version, self.offered)
        if resp.status_code != 200:
            raise UpdateFailed("poll", f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            offer = DeviceModelResponse.model_validate_json(resp.content)
        except ValidationError as exc:
            raise UpdateFailed("poll", f"malformed model response: {exc.errors()[0]['msg']}") from exc
        self.offered = offer.version
        manifest = self._verified_manifest(offer)
        if self.model.version == manifest.release_id and self.model.manifest.files == manifest.files:
            self.etag = resp.headers.get("ETag")
            return UpdateResult("up_to_date", self.model.version, offer.version)
        archive = await self._download(offer)
        model = await self.models.from_archive(offer, archive)
        old, self.model = self.model, model
        self.etag = resp.headers.get("ETag")
        log.debug("%s: %s -> %s", self.device_id, old.version, model.version)
        return UpdateResult("updated", model.version, offer.version)

    def _verified_manifest(self, offer: DeviceModelResponse) -> Manifest:
        return verified_offer_manifest(offer, self.public_key)

    async def _download(self, offer: DeviceModelResponse) -> bytes:
        if offer.bundle_bytes > self.max_bundle_bytes:
            raise UpdateFailed("download", f"bundle is {offer.bundle_bytes} bytes; limit {self.max_bundle_bytes}")
        if not offer.bundle_url.startswith("/") or offer.bundle_url.startswith("//"):
            raise UpdateFailed("download", f"bundle_url {offer.bundle_url!r} is not a path on the cloud")
        digest, chunks, size = hashlib.sha256(), [], 0
        try:
            async with self.client.stream(
                "GET", offer.bundle_url, headers={"Authorization": f"Bearer {self.token}"}
            ) as resp:
                if resp.status_code != 200:
                    raise UpdateFailed("download", f"GET {offer.bundle_url}: HTTP {resp.status_code}")
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > offer.bundle_bytes:
                        raise UpdateFailed("sha256", f"archive is longer than the announced {offer.bundle_bytes} bytes")
                    digest.update(chunk)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise UpdateFailed("download", f"GET {offer.bundle_url} failed: {type(exc).__name__}: {exc}") from exc
        if size != offer.bundle_bytes:
            raise UpdateFailed("sha256", f"archive is {size} bytes, cloud announced {offer.bundle_bytes}")
        if digest.hexdigest() != offer.bundle_sha256:
            raise UpdateFailed("sha256", "archive sha256 does not match bundle_sha256")
        return b"".join(chunks)
