"""Ed25519 signatures over bundle manifests (cloud signs, devices verify against a pinned public key).

The signature covers the canonical JSON of the manifest, and the manifest pins every file's sha256, so one
signature check plus the hash checks of `verify_bundle` authenticate a whole downloaded bundle.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from service.common.errors import BundleError


def canonical_manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """Byte-stable encoding: sorted keys, no whitespace, UTF-8. Both sides must sign/verify these bytes."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_manifest(manifest: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """Base64 (standard alphabet) of the 64-byte Ed25519 signature."""
    return base64.b64encode(key.sign(canonical_manifest_bytes(manifest))).decode("ascii")


def verify_manifest_signature(manifest: dict[str, Any], signature_b64: str, public_key: Ed25519PublicKey) -> None:
    """Raise BundleError unless `signature_b64` is the key's signature of this exact manifest."""
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        public_key.verify(sig, canonical_manifest_bytes(manifest))
    except (InvalidSignature, ValueError) as exc:
        raise BundleError("manifest signature does not verify against the pinned cloud key") from exc


def public_key_to_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: what devices pin (env var or file)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise BundleError("pinned cloud public key is not a base64 raw Ed25519 key") from exc


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_pem(data: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing key is not an Ed25519 private key")
    return key
