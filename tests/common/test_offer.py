"""The signed offer envelope: verified before parsed, bound to its type, bounded in size and depth."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.offer import (
    MAX_OFFER_BYTES,
    OFFER_PAYLOAD_TYPE,
    OfferError,
    OfferPayload,
    open_offer,
    pae,
    sign_offer,
)

KEY = Ed25519PrivateKey.generate()
PAYLOAD = OfferPayload(
    version="eibert-0.3.0", generation=7, issued=1_800_000_000, expires=1_800_086_400, manifest={"name": "eibert"}
)


def _envelope(payload: bytes, signature: bytes, payload_type: str = OFFER_PAYLOAD_TYPE) -> bytes:
    return json.dumps(
        {
            "payload_type": payload_type,
            "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode(),
        }
    ).encode()


def test_round_trip_and_determinism() -> None:
    body = sign_offer(PAYLOAD, KEY)
    assert open_offer(body, KEY.public_key()) == PAYLOAD
    assert sign_offer(PAYLOAD, KEY) == body  # replicas signing the same payload serve the same bytes


def test_another_key_is_refused() -> None:
    with pytest.raises(OfferError, match="signature") as exc:
        open_offer(sign_offer(PAYLOAD, Ed25519PrivateKey.generate()), KEY.public_key())
    assert exc.value.stage == "signature"


def test_payload_changed_after_signing_is_refused_before_it_is_parsed() -> None:
    envelope = json.loads(sign_offer(PAYLOAD, KEY))
    signed = base64.b64decode(envelope["payload"])
    envelope["payload"] = base64.b64encode(signed.replace(b'"generation":7', b'"generation":9')).decode()
    with pytest.raises(OfferError) as exc:
        open_offer(json.dumps(envelope).encode(), KEY.public_key())
    assert exc.value.stage == "signature"


def test_a_signature_over_the_bare_payload_is_not_an_offer_signature() -> None:
    """PAE binds the type: a signature made for another purpose over the same bytes does not verify."""
    body = json.dumps(PAYLOAD.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(OfferError) as exc:
        open_offer(_envelope(body, KEY.sign(body)), KEY.public_key())
    assert exc.value.stage == "signature"
    assert open_offer(_envelope(body, KEY.sign(pae(OFFER_PAYLOAD_TYPE, body))), KEY.public_key()) == PAYLOAD


def test_a_validly_signed_payload_that_is_not_an_offer_is_refused() -> None:
    body = b'{"version": "eibert-0.3.0"}'
    with pytest.raises(OfferError) as exc:
        open_offer(_envelope(body, KEY.sign(pae(OFFER_PAYLOAD_TYPE, body))), KEY.public_key())
    assert exc.value.stage == "manifest"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'{"payload_type": ' * 5000,
        b" " * (MAX_OFFER_BYTES + 1),
        b'{"payload_type": "text/plain", "payload": "", "signature": ""}',
        b'{"payload_type": "application/vnd.eibert.offer+json", "payload": "%%%", "signature": "AA=="}',
        b"\xff\xfe",
    ],
    ids=["nested", "nested_objects", "oversized", "other_type", "not_base64", "not_utf8"],
)
def test_hostile_envelopes_are_refused_at_poll(body: bytes) -> None:
    with pytest.raises(OfferError) as exc:
        open_offer(body, KEY.public_key())
    assert exc.value.stage == "poll"
