"""The signed model offer: what a device may run, signed by the cloud, verified by the device before parsing.

Wire format of a 200 on `GET /v1/devices/{id}/model` (a JSON object of three strings, `SignedOffer`):

    {"payload_type": "application/vnd.eibert.offer+json",
     "payload": "<base64 of the exact signed bytes>",
     "signature": "<base64 Ed25519 over PAE(payload_type, payload bytes)>"}

PAE is DSSE's pre-authentication encoding (`DSSEv1 <len> <type> <len> <body>`): the type is bound into the
signature, so no other eibert signature (the manifest signature admins see) can be replayed as an offer. The
payload, once the signature holds, is the JSON of `OfferPayload`: the release id, the deployment, the rollout
`generation`
(monotonic, bumped by every rollout transition, so a device never accepts a lower one), `issued`/`expires`
(UTC unix seconds) and the manifest. The manifest's `files` pin every bundle file by sha256 and length; a
device fetches exactly those from `GET /v1/blobs/{sha256}` with a byte cap of the signed length, so there is
no archive on the update path and nothing unsigned is ever parsed.

Why not python-tuf: TUF's Metadata API models one repository whose targets are the same for every client,
with root / timestamp / snapshot / targets roles, key thresholds and a root rotation chain fetched by
fixed file names. eibert has one pinned Ed25519 key and a per-device staged rollout (each device is told
which single version to run, by a hash of its id), which TUF could only express with a delegated targets
role per cohort and a snapshot re-signed at every poll. Its client (`tuf.ngclient.Updater`) is synchronous,
meant for a single-instance application with its own metadata directory, and fetches by TUF's URL layout;
the simulator runs thousands of devices in one process without per-device disk, and both updaters are async.
What eibert needs from TUF is its threat model:
verify before parse, a length cap from signed metadata, versions that only move forward (generation),
expiry (freeze), mix-and-match (same generation, other content: refused). Those few checks live here and
in `service.edge.update_protocol`, over `cryptography`'s Ed25519.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.common.errors import BundleError
from service.common.signing import canonical_manifest_bytes

OFFER_PAYLOAD_TYPE = "application/vnd.eibert.offer+json"
MAX_OFFER_BYTES = 256 * 1024  # a real offer is ~15 KB (manifest of ~10 KB, base64); devices read no more
_RELEASE_ID = r"^[A-Za-z0-9_.+-]{1,129}$"


class OfferError(BundleError):
    """The offer cannot be trusted; `stage` says which check refused it (signature | poll | manifest)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class SignedOffer(BaseModel):
    """The envelope: the only thing a device parses before the signature check (three bounded strings)."""

    model_config = ConfigDict(extra="forbid")

    payload_type: Literal["application/vnd.eibert.offer+json"]
    payload: str = Field(max_length=MAX_OFFER_BYTES)
    signature: str = Field(max_length=128)


class OfferPayload(BaseModel):
    """What the cloud signs. `manifest` is the bundle's manifest.json as uploaded (a device writes it to disk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(pattern=_RELEASE_ID)  # release id, `{name}-{version}` of the manifest
    # the deployment the offer is for: a device configured for another refuses it, so a staging cloud that
    # shares the signing key cannot fast-forward production devices (offers of clouds before it say "default")
    deployment: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    generation: int = Field(ge=0)
    issued: int = Field(ge=0)
    expires: int = Field(ge=0)
    manifest: dict[str, Any]

    def content_id(self) -> str:
        """sha256 of (version, canonical manifest): equal iff two offers name the same bytes to run."""
        return hashlib.sha256(self.version.encode() + b"\x00" + canonical_manifest_bytes(self.manifest)).hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is signed, so the type cannot be swapped under a signature."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def sign_offer(payload: OfferPayload, key: Ed25519PrivateKey) -> bytes:
    """The JSON body of a signed offer. Deterministic: Ed25519 and the encoding are, so equal payloads signed
    by one key give equal bytes (and equal ETags) on every cloud replica."""
    body = json.dumps(payload.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()
    envelope = SignedOffer(
        payload_type=OFFER_PAYLOAD_TYPE,
        payload=base64.b64encode(body).decode("ascii"),
        signature=base64.b64encode(key.sign(pae(OFFER_PAYLOAD_TYPE, body))).decode("ascii"),
    )
    return envelope.model_dump_json().encode()


def open_offer(body: bytes, public_key: Ed25519PublicKey) -> OfferPayload:
    """Verify, then parse. Raises OfferError: `poll` for a body that is not an envelope, `signature` unless the
    pinned key signed these exact payload bytes, `manifest` for a signed payload that is not an offer."""
    if len(body) > MAX_OFFER_BYTES:
        raise OfferError("poll", f"offer is {len(body)} bytes; at most {MAX_OFFER_BYTES} accepted")
    try:
        envelope = SignedOffer.model_validate_json(body)
    except ValidationError as exc:
        raise OfferError("poll", f"not a signed offer envelope: {exc.errors()[0]['msg']}") from exc
    try:
        signed = base64.b64decode(envelope.payload, validate=True)
        signature = base64.b64decode(envelope.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise OfferError("poll", f"offer envelope is not base64: {exc}") from exc
    try:
        public_key.verify(signature, pae(envelope.payload_type, signed))
    except InvalidSignature as exc:
        raise OfferError("signature", "offer signature does not verify against the pinned cloud key") from exc
    try:
        return OfferPayload.model_validate_json(signed)
    except ValidationError as exc:
        raise OfferError("manifest", f"signed offer is malformed: {exc.errors()[0]['msg']}") from exc
