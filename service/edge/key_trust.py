"""Which signing key an edge node trusts now: the one it pinned, or the newest it reached by following the
cloud's key rotations from it (`service.common.key_rotation`), and the offer check that uses it.

When an offer does not verify with the trusted key, the node fetches the rotation chain and follows it one step
at a time (each step signed by the key trusted before it and by the next, for this node's deployment); the key
reached is persisted in `state_dir/trusted_key.json` with the pinned key it started from (re-pinning another key
starts over), and the offer is verified with it. A step the trusted key did not sign ends the walk: the offer is
refused at `signature`, saying why.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.common.key_rotation import RotationError, TrustedKey, follow_rotations
from service.common.signing import public_key_from_b64, public_key_to_b64
from service.edge.update_protocol import UpdateFailed, VerifiedOffer, fetch_rotations, verify_offer

log = logging.getLogger(__name__)

TRUSTED_KEY_FILE = "trusted_key.json"


class KeyTrust:
    def __init__(self, state_dir: Path, pinned: Ed25519PublicKey, deployment: str) -> None:
        self.path = Path(state_dir) / TRUSTED_KEY_FILE
        self.pinned = public_key_to_b64(pinned)
        self.deployment = deployment
        self.trusted = self._read()
        self.public_key = public_key_from_b64(self.trusted.key)

    async def verify(self, body: bytes, client: httpx.AsyncClient) -> VerifiedOffer:
        """The offer verified with the trusted key, or with the newest key the cloud's rotations reach from it."""
        try:
            return verify_offer(body, self.public_key, self.deployment)
        except UpdateFailed as exc:
            if exc.stage != "signature":
                raise
            try:
                reached = follow_rotations(await fetch_rotations(client), self.trusted, self.deployment)
            except RotationError as rot:
                raise UpdateFailed("signature", f"{exc}; the cloud's key rotation is refused: {rot}") from rot
            if reached == self.trusted:
                raise
        self._write(reached)
        log.info("signing key rotated to key %d (%s)", reached.version, reached.key)
        return verify_offer(body, self.public_key, self.deployment)

    def _read(self) -> TrustedKey:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
            if stored.get("pinned") == self.pinned:
                return TrustedKey.model_validate(stored["trusted"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring unreadable %s, trusting the pinned key: %s", self.path, exc)
        return TrustedKey(version=1, key=self.pinned)

    def _write(self, key: TrustedKey) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pinned": self.pinned, "trusted": key.model_dump()}), encoding="utf-8")
        os.replace(tmp, self.path)
        self.trusted, self.public_key = key, public_key_from_b64(key.key)
