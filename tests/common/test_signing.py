from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.errors import BundleError
from service.common.signing import (
    canonical_manifest_bytes,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_b64,
    public_key_to_b64,
    sign_manifest,
    verify_manifest_signature,
)

MANIFEST = {"name": "m", "version": "1", "files": {"model.onnx": {"sha256": "ab" * 32, "bytes": 3}}}


def test_sign_then_verify_with_pinned_b64_key() -> None:
    key = Ed25519PrivateKey.generate()
    sig = sign_manifest(MANIFEST, key)
    pinned = public_key_from_b64(public_key_to_b64(key.public_key()))
    verify_manifest_signature(dict(reversed(list(MANIFEST.items()))), sig, pinned)  # key order is irrelevant


@pytest.mark.parametrize("field", ["version", "files"])
def test_tampered_manifest_or_other_key_is_refused(field: str) -> None:
    key = Ed25519PrivateKey.generate()
    sig = sign_manifest(MANIFEST, key)
    tampered = {**MANIFEST, field: "changed"}
    with pytest.raises(BundleError):
        verify_manifest_signature(tampered, sig, key.public_key())
    with pytest.raises(BundleError):
        verify_manifest_signature(MANIFEST, sig, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(BundleError):
        verify_manifest_signature(MANIFEST, "not base64!!", key.public_key())


def test_pem_round_trip_and_canonical_bytes() -> None:
    key = Ed25519PrivateKey.generate()
    again = private_key_from_pem(private_key_to_pem(key))
    assert public_key_to_b64(again.public_key()) == public_key_to_b64(key.public_key())
    assert canonical_manifest_bytes({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
