"""The device side of the update protocol, once, for the edge node's updater and the simulator's devices.

TUF's client workflow, cut to eibert's one key and one offer per device (see `service.common.offer` for the
wire format and why not python-tuf). Each step raises `UpdateFailed(stage, message)`; the stages are:

    trust          the persisted trusted state is unreadable, or missing after this device had trusted an offer
                   (`service.edge.updater` refuses every offer then, rather than trust the next one on first use)
    poll           GET /v1/devices/{id}/model: HTTP error, a body over MAX_OFFER_BYTES (read with a cap, never
                   buffered whole, identity-encoded only), a body that is not a signed-offer envelope, or a 304
                   to a poll that sent no If-None-Match
    signature      the pinned Ed25519 key did not sign these exact payload bytes (nothing else is parsed)
    manifest       the signed payload is not an offer, or its manifest is not a valid manifest of that version
    deployment     the signed offer is for another deployment (a staging cloud sharing the key, say)
    expired        the offer's `expires` has passed (a replayed old offer, or a cloud that stopped re-signing)
    rollback       its rollout generation is lower than the highest this device accepted (a downgrade replay)
    mix_and_match  same generation as the trusted offer, other version or files (offers of two states mixed)
    download       a file's GET /v1/blobs/{sha256} failed, the files exceed the device's byte budget, or
                   the files took longer than the deadline (TUF's slow retrieval: a drip-feed that never trips
                   a per-read timeout still ends)
    sha256         a file is longer or shorter than its signed length, or hashes to something else

Only after `sha256` are bytes written under their real name, and `manifest.json` is written from the signed
manifest, so a loader opens nothing that a signature does not cover. The trusted state (highest generation,
the newest accepted offer's `issued` and `expires`) is persisted atomically before any download, as TUF
persists metadata before fetching targets: a failed download is retried, a replay of an older offer is not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.common import device_client
from service.common.contract import BUNDLE_FILES, MANIFEST_FILE
from service.common.device_api import blob_path
from service.common.device_client import ResponseRefused
from service.common.key_rotation import MAX_ROTATION_BYTES, MAX_ROTATIONS
from service.common.manifest import FileEntry, Manifest
from service.common.offer import MAX_OFFER_BYTES, OfferError, OfferPayload, open_offer

log = logging.getLogger(__name__)

TRUST_FILE = "trusted_offer.json"


class UpdateFailed(Exception):
    """One step of an update failed; `stage` names it (the metric label and what GET /v1/model shows)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class NothingOffered(UpdateFailed):
    """The cloud answered 404: no version is released yet, or only a canary this device is outside of. The
    device keeps what it runs; the edge node does not count it as a failure (see `ModelUpdater.check_once`)."""


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: bytes | dict[str, Any], *, stage: str, what: str) -> M:
    """`data` (JSON bytes or parsed JSON) as `model`, or UpdateFailed(stage) naming the first problem: what the
    cloud sends is checked field by field before any of it is used."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        raise UpdateFailed(stage, f"{what}: {exc.errors()[0]['msg']}") from exc


@dataclass(frozen=True, slots=True)
class VerifiedOffer:
    payload: OfferPayload
    manifest: Manifest

    @property
    def version(self) -> str:
        return self.payload.version


class TrustedState(BaseModel):
    """What a device believes about the cloud's offers; only ever replaced by a newer or equal generation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generation: int = Field(ge=0)
    version: str
    content_id: str  # OfferPayload.content_id() of the accepted offer
    issued: int  # newest `issued` seen for this generation: the age of the device's metadata
    expires: int


class TrustStore(Protocol):
    def load(self) -> TrustedState | None: ...
    def save(self, state: TrustedState) -> None: ...


class FileTrustStore:
    """`state_dir/trusted_offer.json`, replaced atomically (temp file, fsync, rename): a crash leaves the old or
    the new state, never a torn one that would reset rollback protection."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / TRUST_FILE

    def load(self) -> TrustedState | None:
        """The trusted state; None only if the file does not exist. An unreadable file is UpdateFailed("trust"):
        treating it as absent would let the next offer, however old, be trusted on first use again."""
        try:
            return TrustedState.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            raise UpdateFailed("trust", f"{TRUST_FILE} is unreadable ({type(exc).__name__})") from exc

    def save(self, state: TrustedState) -> None:
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(state.model_dump_json().encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


class MemoryTrustStore:
    """For in-process simulated devices (no per-device disk); same checks, lost with the process."""

    def __init__(self) -> None:
        self.state: TrustedState | None = None

    def load(self) -> TrustedState | None:
        return self.state

    def save(self, state: TrustedState) -> None:
        self.state = state


# -- poll and verify ----------------------------------------------------------------------------------------


async def poll_offer(
    client: httpx.AsyncClient, device_id: str, token: str, etag: str | None
) -> tuple[bytes | None, str | None]:
    """(signed offer body, ETag), or (None, etag) on 304. The body is read with a cap of MAX_OFFER_BYTES, identity
    only (`service.common.device_client`). A 304 answers a conditional request only: to a poll that sent no
    If-None-Match it is a lie (nothing was cached to be "not modified"), and is refused."""
    headers = {"Authorization": f"Bearer {token}"}
    if etag:
        headers["If-None-Match"] = etag
    try:
        resp = await device_client.arequest(
            client, "GET", f"/v1/devices/{device_id}/model", cap=MAX_OFFER_BYTES, headers=headers
        )
    except ResponseRefused as exc:
        raise UpdateFailed("poll", str(exc)) from exc
    if resp.status_code == 304:
        if not etag:
            raise UpdateFailed("poll", "HTTP 304 to a poll that sent no If-None-Match: there is nothing it can confirm")
        return None, etag
    if resp.status_code == 404:  # the cloud offers this device nothing (yet): not a failure of the node
        raise NothingOffered("poll", f"the cloud offers this device no model yet: {resp.text[:200]}")
    if resp.status_code != 200:
        hint = " (device token refused)" if resp.status_code in (401, 403) else ""
        raise UpdateFailed("poll", f"HTTP {resp.status_code}{hint}: {resp.text[:200]}")
    return resp.content, resp.headers.get("ETag")


def verify_offer(body: bytes, public_key: Ed25519PublicKey, deployment: str = "default") -> VerifiedOffer:
    """Signature first (over the exact payload bytes), then the deployment, the payload and its manifest."""
    try:
        payload = open_offer(body, public_key)
    except OfferError as exc:
        raise UpdateFailed(exc.stage, str(exc)) from exc
    if payload.deployment != deployment:
        raise UpdateFailed(
            "deployment", f"offer of {payload.version} is for deployment {payload.deployment!r}, not {deployment!r}"
        )
    manifest = validated(Manifest, payload.manifest, stage="manifest", what="signed manifest is invalid")
    if manifest.release_id != payload.version:
        raise UpdateFailed("manifest", f"offer names {payload.version} but its manifest is {manifest.release_id}")
    for name in BUNDLE_FILES:
        if name not in manifest.files:
            raise UpdateFailed("manifest", f"signed manifest does not list {name}")
    for name in manifest.files:
        if Path(name).name != name or name in (MANIFEST_FILE, ".", ".."):
            raise UpdateFailed("manifest", f"signed manifest names {name!r}, not a plain bundle file name")
    return VerifiedOffer(payload=payload, manifest=manifest)


def admit_offer(offer: VerifiedOffer, trusted: TrustedState | None, now: float) -> TrustedState:
    """The trusted state after accepting `offer`, or UpdateFailed(expired | rollback | mix_and_match)."""
    p = offer.payload
    if now >= p.expires:
        raise UpdateFailed("expired", f"offer of {p.version} (generation {p.generation}) expired at {p.expires}")
    content = p.content_id()
    if trusted is not None:
        if p.generation < trusted.generation:
            raise UpdateFailed(
                "rollback",
                f"offer of {p.version} has rollout generation {p.generation}, below the {trusted.generation} "
                f"this device already accepted ({trusted.version}); a replayed older offer",
            )
        if p.generation == trusted.generation:
            if content != trusted.content_id:
                raise UpdateFailed(
                    "mix_and_match",
                    f"offer of {p.version} claims generation {p.generation}, which this device accepted "
                    f"for {trusted.version} with other files",
                )
            if p.issued <= trusted.issued:
                return trusted  # a replay of an older copy: valid, but not newer metadata
    return TrustedState(
        generation=p.generation, version=p.version, content_id=content, issued=p.issued, expires=p.expires
    )


@dataclass(frozen=True, slots=True)
class Freshness:
    age_s: float  # seconds since the newest valid offer this device holds was issued
    stale: bool  # older than the allowed age, or expired: the device cannot vouch it runs what the cloud wants


def freshness(trusted: TrustedState | None, now: float, *, max_age_s: float, since: float) -> Freshness:
    """`since` stands in for `issued` before the first offer (typically when the updater started)."""
    issued = trusted.issued if trusted is not None else since
    age = max(0.0, now - issued)
    expired = trusted is not None and now >= trusted.expires
    return Freshness(age_s=age, stale=age > max_age_s or expired)


async def fetch_rotations(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The cloud's signing-key rotation chain (GET /v1/keys/rotations), read with a cap; each statement is
    checked against the trusted key by `service.common.key_rotation.follow_rotations` before it is believed."""
    try:
        resp = await device_client.arequest(
            client, "GET", "/v1/keys/rotations", cap=MAX_ROTATIONS * MAX_ROTATION_BYTES * 2
        )
    except ResponseRefused as exc:
        raise UpdateFailed("signature", f"key rotations: {exc}") from exc
    if resp.status_code != 200:
        raise UpdateFailed("signature", f"key rotations: HTTP {resp.status_code}")
    try:
        data = json.loads(resp.content)["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UpdateFailed("signature", f"key rotations: not a rotation list ({exc})") from exc
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise UpdateFailed("signature", "key rotations: not a list of statements")
    return data


# -- download -------------------------------------------------------------------------------------------------


async def download_files(
    client: httpx.AsyncClient,
    manifest: Manifest,
    open_sink: Callable[[str], AbstractContextManager[BinaryIO]],
    *,
    max_total_bytes: int,
    headers: dict[str, str] | None = None,
    deadline_s: float = 600.0,
) -> None:
    """Fetch every file the signed manifest pins from GET /v1/blobs/{sha256} into `open_sink(name)`.

    Each stream stops at its signed length (an endless or oversized body costs at most one chunk more) and
    must hash to the signed sha256. Raises UpdateFailed(download | sha256); the caller discards its sinks then.
    """
    total = sum(e.bytes for e in manifest.files.values())
    if total > max_total_bytes:
        raise UpdateFailed("download", f"bundle files are {total} bytes; this device accepts {max_total_bytes}")
    try:
        async with asyncio.timeout(deadline_s):
            for name, entry in sorted(manifest.files.items()):
                await _download_file(client, name, entry, open_sink, headers)
    except TimeoutError as exc:
        raise UpdateFailed("download", f"bundle files took longer than {deadline_s:g} s; download abandoned") from exc


async def _download_file(
    client: httpx.AsyncClient,
    name: str,
    entry: FileEntry,
    open_sink: Callable[[str], AbstractContextManager[BinaryIO]],
    headers: dict[str, str] | None,
) -> None:
    url = blob_path(entry.sha256)
    digest = hashlib.sha256()
    size = 0
    try:
        async with device_client.astream(client, "GET", url, headers=headers) as resp:
            if resp.status_code != 200:
                raise UpdateFailed("download", f"GET {url} ({name}): HTTP {resp.status_code}")
            with open_sink(name) as sink:
                async for chunk in resp.aiter_bytes(device_client.CHUNK_BYTES):
                    size += len(chunk)
                    if size > entry.bytes:
                        raise UpdateFailed(
                            "sha256", f"{name} is longer than its signed {entry.bytes} bytes; download stopped"
                        )
                    digest.update(chunk)
                    sink.write(chunk)
    except ResponseRefused as exc:
        raise UpdateFailed("download", f"GET {url} ({name}): {exc}") from exc
    except httpx.HTTPError as exc:
        raise UpdateFailed("download", f"GET {url} ({name}) failed: {type(exc).__name__}: {exc}") from exc
    if size != entry.bytes:
        raise UpdateFailed("sha256", f"{name} is {size} bytes, its signed length is {entry.bytes}")
    if digest.hexdigest() != entry.sha256:
        raise UpdateFailed("sha256", f"{name} does not hash to its signed sha256")


def write_signed_manifest(bundle_dir: Path, offer: VerifiedOffer) -> None:
    """manifest.json from the signed manifest (never from downloaded bytes)."""
    (Path(bundle_dir) / MANIFEST_FILE).write_text(json.dumps(offer.payload.manifest, indent=2), encoding="utf-8")
