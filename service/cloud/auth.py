"""Bearer tokens: device tokens (random, stored only as sha256) and the admin token.

Device tokens are 256-bit random strings, so a plain sha256 is enough to make a stolen store useless for
authenticating (no password-style slow hash is needed for high-entropy secrets). Comparisons of secrets are
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MAX_TOKEN_CHARS = 256


def new_device_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None if absent or malformed."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
