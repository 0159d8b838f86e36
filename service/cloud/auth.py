"""Bearer tokens: device tokens (random, stored only as sha256) and the admin token.

Device tokens are 256-bit random strings, so a plain sha256 is enough to make a stolen store useless for
authenticating (no password-style slow hash is needed for high-entropy secrets). Comparisons of secrets are
constant time.

The admin token is the operator's; `admin_token_problem` is checked at startup so a cloud never runs with a
token that is guessable (`aaaaaaaaaaaaaaaa`, 16 spaces) or that no client could ever present (surrounding
whitespace is stripped by `bearer`, more than MAX_TOKEN_CHARS is refused by it): either would start a cloud
that is open, or one whose every admin call is locked out. The entropy figure is an estimate (length times the
empirical Shannon entropy of the token's own characters); with a count of distinct characters it catches
repetition and tiny alphabets, not a dictionary phrase, which is why generated tokens
(`secrets.token_urlsafe(32)`, ~215 bits by this estimate) are advised.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import Counter

MAX_TOKEN_CHARS = 256
MIN_ADMIN_TOKEN_CHARS = 16
MIN_ADMIN_TOKEN_BITS = 64.0  # estimated, see estimated_bits
MIN_ADMIN_TOKEN_DISTINCT = 8  # distinct characters: a long repetition of a few has many "bits" but is guessable
WEAK_TOKENS = frozenset({"changethis", "admin", "secret", "password", "token", "dev", "test", "changeme"})


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


def estimated_bits(token: str) -> float:
    """len(token) x the Shannon entropy of its character frequencies: 0 for `aaaa...`, ~6 bits a character at
    most for a urlsafe-base64 token."""
    n = len(token)
    if n == 0:
        return 0.0
    return n * -sum(c / n * math.log2(c / n) for c in Counter(token).values())


def admin_token_problem(token: str) -> str | None:
    """Why `token` must not be the admin token, or None if it may be."""
    if token.lower() in WEAK_TOKENS:
        return "is a well-known default"
    if any(not ("!" <= ch <= "~") for ch in token):
        return "contains whitespace or characters outside printable ASCII (it could not be sent as a bearer token)"
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        return f"is shorter than {MIN_ADMIN_TOKEN_CHARS} characters"
    if len(token) > MAX_TOKEN_CHARS:
        return f"is longer than {MAX_TOKEN_CHARS} characters (the most a bearer token may have here)"
    if len(set(token)) < MIN_ADMIN_TOKEN_DISTINCT:
        return f"is too predictable (fewer than {MIN_ADMIN_TOKEN_DISTINCT} distinct characters)"
    bits = estimated_bits(token)
    if bits < MIN_ADMIN_TOKEN_BITS:
        return f"is too predictable (about {bits:.0f} bits estimated, at least {MIN_ADMIN_TOKEN_BITS:.0f} needed)"
    return None
