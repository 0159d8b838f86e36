"""The model registry: admit an uploaded bundle archive as an immutable, signed version.

Admission treats the upload as hostile and checks, in order: the archive is safe to unpack (allow-listed
plain files, bounded headers and sizes: `service.common.archive`), `model.onnx` fits the size budget, then
`service.common.model_admission.admit_bundle`: every file matches the manifest's sha256, manifest.json and
tokenizer.json are size- and depth-bounded JSON, the graph passes the static checks (operator allow-list,
node and initializer budgets, the contract's names) and a trial load + inference in a child process under a
memory limit and a timeout.

Admission (seconds) runs outside the upload lock, in at most `max_concurrent_admissions` at once; a further
upload is answered at once with AdmissionBusyError (429 + Retry-After) rather than queued, so a slow or
hostile upload can neither block honest ones behind a lock nor pile up children. The lock covers only the
check-and-insert of the version record.

Registration order makes it crash-safe: the archive blob and one blob per bundle file (what devices fetch by
content address) are written to the store first (`service.cloud.blobs`: every replica on the store serves
them), the version's metadata last, in one atomic store operation. A crash in between leaves an unreferenced blob
(harmless, content-addressed) and no version. Versions are immutable, so each process caches them forever.

Device offers (`service.common.offer`) are signed per (version, rollout generation, issue window): `issued`
is the start of the current window of offer_ttl_s / 2 seconds, `expires` is issued + offer_ttl_s. Every
replica thus signs the same bytes (Ed25519 is deterministic) and the ETag changes once per window, which is
how polling devices learn of the fresh expiry.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.cloud.blobs import BlobStore
from service.cloud.errors import VersionConflictError
from service.cloud.store import Store, VersionRecord
from service.common.archive import unpack_bundle
from service.common.contract import MODEL_FILE
from service.common.errors import BundleError, EibertError
from service.common.manifest import Manifest, read_manifest_json
from service.common.model_admission import AdmissionLimits, admit_bundle
from service.common.offer import OfferPayload, sign_offer
from service.common.signing import canonical_manifest_bytes, public_key_to_b64, sign_manifest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InspectedBundle:
    manifest: Manifest
    raw_manifest: dict[str, Any]  # manifest.json as uploaded: what gets signed and served
    model_bytes: int
    files: dict[str, bytes] = dataclasses.field(repr=False)  # every manifest file's verified bytes, stored as blobs

    @property
    def version(self) -> str:
        return self.manifest.release_id


def _epoch_s(iso: str | None) -> int | None:
    """An ISO 8601 time (the rollout's `updated_at`) as whole Unix seconds; None if absent or unreadable."""
    if not iso:
        return None
    try:
        when = dt.datetime.fromisoformat(iso)
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp())


def inspect_bundle(archive: bytes, *, tmp_root: Path, max_model_bytes: int, limits: AdmissionLimits) -> InspectedBundle:
    """Unpack into a private temp dir and run every admission check. Blocking; call from a worker thread."""
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="inspect-") as tmp:
        bundle = Path(tmp) / "bundle"
        try:
            unpack_bundle(archive, bundle)
            raw = read_manifest_json(bundle)
            model_bytes = (bundle / MODEL_FILE).stat().st_size
            if model_bytes > max_model_bytes:
                raise BundleError(f"{MODEL_FILE} is {model_bytes:,} bytes; the size budget is {max_model_bytes:,}")
            manifest = admit_bundle(bundle, limits)
        except BundleError as exc:  # the uploader reads this: name the files, not this replica's temp dirs
            raise BundleError(_without_paths(str(exc), bundle)) from exc
        files = {name: (bundle / name).read_bytes() for name in manifest.files}  # verified: required + optional
    return InspectedBundle(manifest=manifest, raw_manifest=raw, model_bytes=model_bytes, files=files)


def _without_paths(message: str, bundle: Path) -> str:
    """`message` with the unpacked bundle's absolute location (and its temp parent) cut to the bundle's own
    file names, e.g. "/data/tmp/inspect-x1/bundle/model.onnx: ..." -> "model.onnx: ..."."""
    for prefix in (str(bundle.resolve()), str(bundle), str(bundle.parent.resolve()), str(bundle.parent)):
        message = message.replace(prefix + "/", "").replace(prefix, "bundle")
    return message


class AdmissionBusyError(EibertError):
    """Every admission slot is taken; the upload may be retried after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Registry:
    """Admission, signing and lookup of versions; the device-facing response of each version is cached."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        key: Ed25519PrivateKey,
        max_model_bytes: int,
        tmp_root: Path,
        offer_ttl_s: int = 24 * 3600,
        clock: Callable[[], float] = time.time,
        admission: AdmissionLimits | None = None,
        max_concurrent_admissions: int = 2,
        deployment: str = "default",
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.deployment = deployment  # named in every offer: devices of another deployment refuse it
        self.key = key
        self.public_key = public_key_to_b64(key.public_key())
        self.max_model_bytes = max_model_bytes
        self.tmp_root = tmp_root
        self._cache: dict[str, VersionRecord] = {}
        self.offer_ttl_s = offer_ttl_s
        self.clock = clock
        self._device_bodies: dict[tuple[str, int, int], tuple[bytes, str]] = {}
        self.admission = admission or AdmissionLimits()
        # Bounds the trial children (CPU, memory) per process; the lock below only orders check-and-insert.
        self._admissions = asyncio.Semaphore(max_concurrent_admissions)
        self.admissions_in_flight = 0
        self._upload_lock = asyncio.Lock()

    async def register(self, archive: bytes) -> tuple[VersionRecord, bool]:
        """Admit `archive`; return (record, created). Same bundle again: (existing, False). Conflict: 409."""
        if self._admissions.locked():  # no await between this check and the acquire below: no race
            raise AdmissionBusyError(
                "every model admission slot is busy trying another upload; retry later",
                retry_after_s=max(1, round(self.admission.timeout_s)),
            )
        async with self._admissions:
            self.admissions_in_flight += 1
            try:
                inspected = await anyio.to_thread.run_sync(
                    lambda: inspect_bundle(
                        archive, tmp_root=self.tmp_root, max_model_bytes=self.max_model_bytes, limits=self.admission
                    )
                )
            finally:
                self.admissions_in_flight -= 1
        async with self._upload_lock:
            version = inspected.version
            existing = await self.get(version)
            if existing is not None:
                same = self._same_or_conflict(existing, inspected.raw_manifest)
                await self._put_files(inspected)  # re-uploading a version registered before file blobs adds them
                if hashlib.sha256(archive).hexdigest() == existing.bundle_sha256:  # and its archive, if still lacking
                    await self.blobs.put(archive)
                return same, False
            sha = await self.blobs.put(archive)
            await self._put_files(inspected)
            record = VersionRecord(
                version=version,
                name=inspected.manifest.name,
                manifest=inspected.raw_manifest,
                signature=sign_manifest(inspected.raw_manifest, self.key),
                public_key=self.public_key,
                bundle_sha256=sha,
                bundle_bytes=len(archive),
                model_bytes=inspected.model_bytes,
                registered_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
            stored, created = await self.store.put_version(record)
            if not created:  # another replica registered it between our check and our insert
                return self._same_or_conflict(stored, inspected.raw_manifest), False
            self._cache[version] = stored
            log.info("registered %s (bundle %s, %d bytes)", version, sha[:12], len(archive))
            return stored, True

    async def _put_files(self, inspected: InspectedBundle) -> None:
        """Each bundle file as its own blob: what devices fetch, by the sha256 the signed manifest pins."""
        for data in inspected.files.values():
            await self.blobs.put(data)

    @staticmethod
    def _same_or_conflict(existing: VersionRecord, manifest: dict[str, Any]) -> VersionRecord:
        """Same bundle = same manifest (it pins every file's sha256), even if the archive was packed anew
        (gzip headers carry a timestamp, so re-packing the same directory need not give identical bytes)."""
        if canonical_manifest_bytes(existing.manifest) != canonical_manifest_bytes(manifest):
            raise VersionConflictError(
                f"version {existing.version} is already registered with a different bundle "
                f"({existing.bundle_sha256[:12]}…); versions are immutable, bump the manifest version"
            )
        return existing

    async def get(self, version: str) -> VersionRecord | None:
        record = self._cache.get(version)
        if record is None:
            record = await self.store.get_version(version)
            if record is not None:
                self._cache[version] = record
        return record

    async def bundle_path(self, record: VersionRecord) -> Path | None:
        return await self.blobs.path(record.bundle_sha256)

    def device_body(self, record: VersionRecord, generation: int, *, since: str | None = None) -> tuple[bytes, str]:
        """The signed offer (body of GET /v1/devices/{id}/model) of this version at this rollout generation,
        and its ETag (sha256 of the body); cached per issue window, re-signed when the window turns.

        Windows start at the rollout transition that made this generation (`since`, the rollout's
        `updated_at`, read from the shared store, so every replica signs the same bytes): an offer made by a
        rollout is issued when the rollout happened, so a device's `metadata_age_s` right after it reads
        seconds, not the hours since a window aligned to the epoch began."""
        window = max(1, self.offer_ttl_s // 2)
        now = int(self.clock())
        anchor = _epoch_s(since)
        if anchor is None or anchor > now:  # no transition recorded, or a replica's clock behind the store's
            anchor = 0
        issued = anchor + (now - anchor) // window * window
        key = (record.version, generation, issued)
        cached = self._device_bodies.get(key)
        if cached is None:
            payload = OfferPayload(
                version=record.version,
                deployment=self.deployment,
                generation=generation,
                issued=issued,
                expires=issued + self.offer_ttl_s,
                manifest=record.manifest,
            )
            body = sign_offer(payload, self.key)
            cached = (body, f'"{hashlib.sha256(body).hexdigest()}"')
            if len(self._device_bodies) >= 256:  # old windows and generations: never asked for again
                self._device_bodies.clear()
            self._device_bodies[key] = cached
        return cached
