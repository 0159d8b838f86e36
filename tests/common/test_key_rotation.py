"""Signing-key rotation statements (service/common/key_rotation.py): a device follows a chain only one step at a
time, each step signed by the key it trusts and by the key named, for its deployment."""

from __future__ import annotations

import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.key_rotation import (
    MAX_ROTATIONS,
    RotationError,
    TrustedKey,
    follow_rotations,
    open_rotation,
    sign_rotation,
    stored_head,
)
from service.common.signing import public_key_to_b64

K1, K2, K3, EVIL = (Ed25519PrivateKey.generate() for _ in range(4))


def pub(k: Ed25519PrivateKey) -> str:
    return public_key_to_b64(k.public_key())


ROOT = TrustedKey(version=1, key=pub(K1))


def test_a_chain_is_followed_step_by_step_from_any_trusted_key() -> None:
    chain = [
        sign_rotation(K1, K2, version=2, deployment="prod", issued=1),
        sign_rotation(K2, K3, version=3, deployment="prod", issued=2),
    ]
    assert follow_rotations(chain, ROOT, "prod") == TrustedKey(version=3, key=pub(K3))
    assert follow_rotations(chain, TrustedKey(version=2, key=pub(K2)), "prod").key == pub(K3)
    assert follow_rotations(chain[:0], ROOT, "prod") == ROOT

    assert stored_head([json.dumps(s) for s in chain], pub(K1)) == TrustedKey(version=3, key=pub(K3))
    assert stored_head([], pub(K1)) == ROOT


@pytest.mark.parametrize(
    "statement",
    [
        sign_rotation(EVIL, K2, version=2, deployment="prod", issued=1),  # not signed by the trusted key
        sign_rotation(K1, K2, version=3, deployment="prod", issued=1),  # skips a version
        sign_rotation(K1, K2, version=2, deployment="staging", issued=1),  # another deployment
    ],
    ids=["old-key-missing", "version-skip", "deployment"],
)
def test_a_rotation_the_trusted_key_did_not_sign_for_this_step_is_refused(statement: dict) -> None:
    with pytest.raises(RotationError):
        open_rotation(statement, ROOT, "prod")


def test_both_signatures_must_hold_over_the_exact_payload() -> None:
    good = sign_rotation(K1, K2, version=2, deployment="prod", issued=1)
    evil = sign_rotation(K1, EVIL, version=2, deployment="prod", issued=1)
    swapped = copy.deepcopy(good)
    swapped["payload"] = evil["payload"]  # the old key's signature over another statement
    with pytest.raises(RotationError, match="trusted key"):
        open_rotation(swapped, ROOT, "prod")
    no_new = copy.deepcopy(good)
    no_new["signatures"][1] = dict(no_new["signatures"][0])  # the old key twice: the new key never agreed
    with pytest.raises(RotationError, match="key it names"):
        open_rotation(no_new, ROOT, "prod")
    for bad in ({}, {"payload_type": "x"}, {**good, "extra": 1}, {**good, "payload": "%%%"}):
        with pytest.raises(RotationError):
            open_rotation(bad, ROOT, "prod")


def test_a_chain_longer_than_devices_read_is_refused() -> None:
    chain = [sign_rotation(K1, K2, version=2, deployment="prod", issued=1)] * (MAX_ROTATIONS + 1)
    with pytest.raises(RotationError, match="at most"):
        follow_rotations(chain, ROOT, "prod")
