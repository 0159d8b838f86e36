"""How a simulated device follows rollouts: the edge node's update protocol, minus its per-device disk.

Poll, signature, manifest, expiry, rollback, mix-and-match, download and sha256 are the very functions of
`service.edge.update_protocol` that `service.edge.updater.ModelUpdater` runs, raising the same `UpdateFailed`
stages, so a simulated fleet refuses exactly what a real node refuses. What differs is storage: a real node
writes each bundle into its own state directory and persists its trusted offer there; a fleet of thousands in
one process keeps the trusted offer in memory and, after each file's sha256 check, hands the bytes to the
shared `ModelLibrary`. As in the edge updater, the ETag is remembered only after a successful check, so a
rejected download is retried at the next poll while the old model keeps serving.

Version names: the cloud registers and offers a bundle by its manifest's `release_id` (`{name}-{version}`);
an offer naming anything else is refused, as the edge updater refuses it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from service.common import device_client
from service.common.device_api import DeviceEnrolResponse
from service.common.device_client import ResponseRefused
from service.common.errors import BundleError
from service.edge.update_protocol import (
    MemoryTrustStore,
    UpdateFailed,
    VerifiedOffer,
    admit_offer,
    download_files,
    poll_offer,
    verify_offer,
)
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
        clock: Callable[[], float] = time.time,
        enrolment_token: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.client = client
        self.public_key = public_key
        self.models = models
        self.model = model
        self.max_bundle_bytes = max_bundle_bytes
        self.clock = clock
        self.trust = MemoryTrustStore()
        self.enrolment_token = enrolment_token  # operator-issued: the cloud refuses enrolment without one
        self.token: str | None = None
        self.etag: str | None = None
        self.offered: str | None = None

    async def enrol(self) -> bool:
        """POST /v1/devices once, with the enrolment token; False (retry later) if the cloud cannot be reached
        or refuses (including 429: the cloud's per-address enrolment rate limit)."""
        if self.token is not None:
            return True
        try:
            resp = await device_client.enrol(self.client, self.device_id, self.enrolment_token or None)
        except (httpx.HTTPError, ResponseRefused) as exc:
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
            return UpdateResult("failed", self.model.version, self.offered, "load", str(exc))
        except httpx.HTTPError as exc:
            return UpdateResult("failed", self.model.version, self.offered, "poll", f"{type(exc).__name__}: {exc}")

    async def _check(self) -> UpdateResult:
        if self.token is None and not await self.enrol():
            raise UpdateFailed("enrol", "not enrolled yet")
        body, etag = await poll_offer(self.client, self.device_id, self.token, self.etag)
        if body is None:
            return UpdateResult("not_modified", self.model.version, self.offered)
        offer = verify_offer(body, self.public_key)
        self.offered = offer.version
        self.trust.save(admit_offer(offer, self.trust.load(), self.clock()))
        manifest = offer.manifest
        if self.model.version == manifest.release_id and self.model.manifest.files == manifest.files:
            self.etag = etag
            return UpdateResult("up_to_date", self.model.version, offer.version)
        files = await self._download(offer)
        model = await self.models.from_files(offer, files)
        old, self.model = self.model, model
        self.etag = etag
        log.debug("%s: %s -> %s", self.device_id, old.version, model.version)
        return UpdateResult("updated", model.version, offer.version)

    async def _download(self, offer: VerifiedOffer) -> dict[str, bytes]:
        """This device's own copy of every signed file, each checked against its signed length and sha256."""
        buffers: dict[str, io.BytesIO] = {}
        await download_files(
            self.client,
            offer.manifest,
            lambda name: contextlib.nullcontext(buffers.setdefault(name, io.BytesIO())),
            max_total_bytes=self.max_bundle_bytes,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return {name: buf.getvalue() for name, buf in buffers.items()}
