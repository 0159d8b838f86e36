"""Signing-key rotation, TUF's root rotation cut to eibert's one key: how devices move from the key they pinned
to the cloud's next one without trusting anything the old key did not sign.

A rotation statement says "key N+1 of deployment D is K, replacing key N, P". It is signed twice, by P (so only
the holder of the key devices trust can name its successor) and by K (so nobody can name a key whose holder
did not agree, which TUF asks of a new root too). Devices start from the key they pinned (key 1) and walk the
chain one version at a time: each step must name the key they trust now as `previous_key`, carry both
signatures and name their deployment, or the walk stops there with RotationError. Nothing in a statement is
parsed before both signatures over its exact bytes hold.

Wire format (what `GET /v1/keys/rotations` lists and `POST /v1/keys/rotations` takes), one JSON object each:

    {"payload_type": "application/vnd.eibert.rotation+json",
     "payload": "<base64 of the exact signed bytes>",
     "signatures": [{"key": "<base64 raw public key>", "sig": "<base64 Ed25519 over PAE(type, payload)>"}, ...]}

`eibert keys rotate` makes one on the operator's machine (both private keys stay there) and uploads it; the
cloud checks that it extends its chain before storing it. Once replicas sign with the new key, a device whose
offer no longer verifies fetches the chain, follows it, and verifies with the newest key it reached.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.common.errors import BundleError
from service.common.offer import pae
from service.common.signing import public_key_from_b64, public_key_to_b64

ROTATION_PAYLOAD_TYPE = "application/vnd.eibert.rotation+json"
DEPLOYMENT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_ROTATION_BYTES = 4096  # one statement is ~600 bytes
MAX_ROTATIONS = 64  # a chain longer than this is refused (devices read it with a cap)
_KEY = r"^[A-Za-z0-9+/]{43}=$"  # base64 of 32 raw bytes


class RotationError(BundleError):
    """A rotation statement or chain that cannot be trusted."""


class RotationSignature(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_KEY)
    sig: str = Field(max_length=128)


class SignedRotation(BaseModel):
    """The envelope: all a device parses before the signatures hold."""

    model_config = ConfigDict(extra="forbid")

    payload_type: Literal["application/vnd.eibert.rotation+json"]
    payload: str = Field(max_length=MAX_ROTATION_BYTES)
    signatures: list[RotationSignature] = Field(min_length=2, max_length=2)


class RotationPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=2)  # the new key's number: the pinned key is 1
    deployment: str = Field(pattern=DEPLOYMENT_PATTERN)
    previous_key: str = Field(pattern=_KEY)
    key: str = Field(pattern=_KEY)
    issued: int = Field(ge=0)


class TrustedKey(BaseModel):
    """The key a device verifies offers with now, and its number in the chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    key: str = Field(pattern=_KEY)


def sign_rotation(
    old: Ed25519PrivateKey, new: Ed25519PrivateKey, *, version: int, deployment: str, issued: int
) -> dict:
    """The statement naming `new` as key `version` after `old`, signed by both (operator side)."""
    payload = RotationPayload(
        version=version,
        deployment=deployment,
        previous_key=public_key_to_b64(old.public_key()),
        key=public_key_to_b64(new.public_key()),
        issued=issued,
    )
    body = json.dumps(payload.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    signed = pae(ROTATION_PAYLOAD_TYPE, body)
    return SignedRotation(
        payload_type=ROTATION_PAYLOAD_TYPE,
        payload=base64.b64encode(body).decode("ascii"),
        signatures=[
            RotationSignature(key=public_key_to_b64(k.public_key()), sig=base64.b64encode(k.sign(signed)).decode())
            for k in (old, new)
        ],
    ).model_dump()


def open_rotation(statement: dict, trusted: TrustedKey, deployment: str) -> TrustedKey:
    """The key after `statement`, if it is the next step from `trusted`: signed by the trusted key and by the
    key it names, for `deployment`, version trusted.version + 1. RotationError otherwise."""
    try:
        envelope = SignedRotation.model_validate(statement)
        body = base64.b64decode(envelope.payload, validate=True)
        sigs = {s.key: base64.b64decode(s.sig, validate=True) for s in envelope.signatures}
    except (ValidationError, binascii.Error, ValueError) as exc:
        raise RotationError(f"not a rotation statement: {exc}") from exc
    signed = pae(ROTATION_PAYLOAD_TYPE, body)
    if trusted.key not in sigs:
        raise RotationError("rotation is not signed by the key this device trusts")
    _verify(trusted.key, sigs[trusted.key], signed, "the trusted key")
    try:
        payload = RotationPayload.model_validate_json(body)
    except ValidationError as exc:
        raise RotationError(f"signed rotation is malformed: {exc.errors()[0]['msg']}") from exc
    if payload.previous_key != trusted.key or payload.version != trusted.version + 1:
        raise RotationError(
            f"rotation to key {payload.version} does not follow key {trusted.version} this device trusts"
        )
    if payload.deployment != deployment:
        raise RotationError(f"rotation is for deployment {payload.deployment!r}, not {deployment!r}")
    if payload.key not in sigs or payload.key == trusted.key:
        raise RotationError("rotation is not signed by the key it names")
    _verify(payload.key, sigs[payload.key], signed, "the new key")
    return TrustedKey(version=payload.version, key=payload.key)


def _verify(key_b64: str, sig: bytes, signed: bytes, what: str) -> None:
    try:
        public_key_from_b64(key_b64).verify(sig, signed)
    except (InvalidSignature, BundleError) as exc:
        raise RotationError(f"rotation signature by {what} does not verify") from exc


def follow_rotations(chain: Sequence[dict], trusted: TrustedKey, deployment: str) -> TrustedKey:
    """Walk `chain` (oldest first) from `trusted`: statements up to the trusted version are skipped, each later
    one must be the next step. The newest key reached; RotationError at the first step that fails."""
    if len(chain) > MAX_ROTATIONS:
        raise RotationError(f"rotation chain has {len(chain)} statements; at most {MAX_ROTATIONS} accepted")
    for statement in chain[trusted.version - 1 :]:
        trusted = open_rotation(statement, trusted, deployment)
    return trusted


def stored_head(statements: Sequence[str], root: str) -> TrustedKey:
    """The newest key of a chain the cloud stored (each statement checked when it was added), key 1 = `root`."""
    if not statements:
        return TrustedKey(version=1, key=root)
    envelope = SignedRotation.model_validate_json(statements[-1])
    last = RotationPayload.model_validate_json(base64.b64decode(envelope.payload))
    return TrustedKey(version=last.version, key=last.key)
