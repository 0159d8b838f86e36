"""The model registry: admit an uploaded bundle archive as an immutable, signed version.

Admission treats the upload as hostile and checks, in order: the archive is safe to unpack (allow-listed
plain files, bounded sizes: `service.common.archive`), every file matches the manifest's sha256
(`verify_bundle`), `model.onnx` fits the size budget, loads in onnxruntime with exactly the contract's inputs
and output, and runs on a two-token input giving a (1, dim) finite embedding; `tokenizer.json` is JSON.

Registration order makes it crash-safe: the archive blob is written first (temp file + fsync + rename), the
version's metadata last, in one atomic store operation. A crash in between leaves an unreferenced blob
(harmless, content-addressed) and no version. Versions are immutable, so each process caches them forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.cloud.blobs import BlobStore
from service.cloud.errors import VersionConflictError
from service.cloud.store import Store, VersionRecord
from service.common.archive import unpack_bundle
from service.common.contract import (
    ATTENTION_MASK,
    INPUT_IDS,
    MANIFEST_FILE,
    MODEL_FILE,
    ONNX_INPUTS,
    SENTENCE_EMBEDDING,
    TOKENIZER_FILE,
)
from service.common.device_api import DeviceModelResponse
from service.common.errors import BundleError
from service.common.manifest import Manifest, verify_bundle
from service.common.signing import canonical_manifest_bytes, public_key_to_b64, sign_manifest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InspectedBundle:
    manifest: Manifest
    raw_manifest: dict[str, Any]  # manifest.json as uploaded: what gets signed and served
    model_bytes: int

    @property
    def version(self) -> str:
        return self.manifest.release_id


def check_onnx(path: Path, dim: int) -> None:
    """Raise BundleError unless the model loads and honours the contract (names, shape, finite output)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no public base class
        raise BundleError(f"{MODEL_FILE} does not load in onnxruntime: {str(exc)[:300]}") from exc
    inputs = sorted(i.name for i in session.get_inputs())
    if inputs != sorted(ONNX_INPUTS):
        raise BundleError(f"{MODEL_FILE} inputs are {inputs}, the contract needs {sorted(ONNX_INPUTS)}")
    outputs = [o.name for o in session.get_outputs()]
    if SENTENCE_EMBEDDING not in outputs:
        raise BundleError(f"{MODEL_FILE} outputs are {outputs}, the contract needs {SENTENCE_EMBEDDING!r}")
    feeds = {INPUT_IDS: np.zeros((1, 2), dtype=np.int64), ATTENTION_MASK: np.ones((1, 2), dtype=np.int64)}
    try:
        (emb,) = session.run([SENTENCE_EMBEDDING], feeds)
    except Exception as exc:  # same: any runtime failure means the bundle is unusable
        raise BundleError(f"{MODEL_FILE} fails on a two-token input: {str(exc)[:300]}") from exc
    if emb.shape != (1, dim) or not np.all(np.isfinite(emb)):
        raise BundleError(
            f"{MODEL_FILE} returns shape {emb.shape} (finite: {np.isfinite(emb).all()}), expected (1, {dim})"
        )


def inspect_bundle(archive: bytes, *, tmp_root: Path, max_model_bytes: int) -> InspectedBundle:
    """Unpack into a private temp dir and run every admission check. Blocking; call from a worker thread."""
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="inspect-") as tmp:
        bundle = unpack_bundle(archive, Path(tmp) / "bundle")
        manifest = verify_bundle(bundle)
        raw = json.loads((bundle / MANIFEST_FILE).read_text(encoding="utf-8"))
        model_bytes = (bundle / MODEL_FILE).stat().st_size
        if model_bytes > max_model_bytes:
            raise BundleError(f"{MODEL_FILE} is {model_bytes:,} bytes; the size budget is {max_model_bytes:,}")
        try:
            json.loads((bundle / TOKENIZER_FILE).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{TOKENIZER_FILE} is not valid JSON: {exc}") from exc
        check_onnx(bundle / MODEL_FILE, manifest.dim)
    return InspectedBundle(manifest=manifest, raw_manifest=raw, model_bytes=model_bytes)


class Registry:
    """Admission, signing and lookup of versions; the device-facing response of each version is cached."""

    def __init__(
        self, *, store: Store, blobs: BlobStore, key: Ed25519PrivateKey, max_model_bytes: int, tmp_root: Path
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.key = key
        self.public_key = public_key_to_b64(key.public_key())
        self.max_model_bytes = max_model_bytes
        self.tmp_root = tmp_root
        self._cache: dict[str, VersionRecord] = {}
        self._device_bodies: dict[str, tuple[bytes, str]] = {}
        self._upload_lock = asyncio.Lock()  # one admission at a time bounds CPU and memory per process

    async def register(self, archive: bytes) -> tuple[VersionRecord, bool]:
        """Admit `archive`; return (record, created). Same bundle again: (existing, False). Conflict: 409."""
        async with self._upload_lock:
            inspected = await anyio.to_thread.run_sync(
                lambda: inspect_bundle(archive, tmp_root=self.tmp_root, max_model_bytes=self.max_model_bytes)
            )
            version = inspected.version
            existing = await self.get(version)
            if existing is not None:
                return self._same_or_conflict(existing, inspected.raw_manifest), False
            sha, _ = await anyio.to_thread.run_sync(self.blobs.put, archive)
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

    def bundle_path(self, record: VersionRecord) -> Path:
        return self.blobs.path(record.bundle_sha256)

    def device_body(self, record: VersionRecord) -> tuple[bytes, str]:
        """The JSON body of GET /v1/devices/{id}/model for this version, and its ETag (sha256 of the body)."""
        cached = self._device_bodies.get(record.version)
        if cached is None:
            body = (
                DeviceModelResponse(
                    version=record.version,
                    manifest=record.manifest,
                    signature=record.signature,
                    bundle_url=f"/v1/models/{record.version}/bundle",
                    bundle_sha256=record.bundle_sha256,
                    bundle_bytes=record.bundle_bytes,
                )
                .model_dump_json()
                .encode()
            )
            cached = (body, f'"{hashlib.sha256(body).hexdigest()}"')
            self._device_bodies[record.version] = cached
        return cached
