"""Who may become a device: enrolment needs a credential the operator issued.

k_min and the per-device budget count *devices*, so devices must not be free to mint: with open enrolment
one caller could make the k_min - 1 other members of a victim's group and read the victim's report back out
of a release. Here an admin issues enrolment tokens (`POST /v1/enrolment-tokens`): a 256-bit secret shown
once and stored as its sha256, with a quota (`max_devices`) and an expiry. `POST /v1/devices` requires one
(`Authorization: Bearer <enrolment token>`; looked up by its sha256 like device tokens, see `auth.py`, so the
secret itself is never compared) and the store counts the new device against the quota in the
same atomic step that creates it, so concurrent enrolments on any replica can never exceed it.

Every attempt, with a valid token or not, is also rate-limited per client address and per presented
credential (fixed windows kept in the store, so replicas share them): 429 with Retry-After. The address is
the TCP peer; behind a proxy it is the proxy's, which then limits all its clients together.

Device tokens expire (`device_token_ttl_s` after they were issued) and a device renews its own before then
(`renew_device_token`: the old one stops at once). The operator lists and revokes enrolment tokens, and revokes
devices (`eibert enrolment-tokens`, `eibert devices revoke`): every check reads the store, so a revocation holds
on every replica from the next request.

This stands in for device attestation. An enrolment token proves only that the caller got it from the
operator, not that the caller is a distinct physical device: whoever holds a token can enrol up to
`max_devices` devices with it. What it buys is that sybils cost the operator's cooperation (or a leaked
token, bounded by its quota and expiry) instead of nothing. Hardware attestation (Play Integrity, App
Attest, a TPM quote) would bind each enrolment to one device; it is out of scope here.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import time

from fastapi import HTTPException

from service.cloud.auth import new_device_token, token_hash
from service.cloud.config import Settings
from service.cloud.schemas import EnrolmentTokenCreate, EnrolmentTokenInfoPublic, EnrolmentTokenPublic
from service.cloud.store import EnrolmentTokenRecord, EnrolOutcome, Store

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def issue_token(store: Store, body: EnrolmentTokenCreate, *, now: float | None = None) -> EnrolmentTokenPublic:
    token = secrets.token_urlsafe(32)
    expires_at = (time.time() if now is None else now) + body.expires_in_s
    record = EnrolmentTokenRecord(token_hash(token), body.max_devices, expires_at, body.label)
    await store.create_enrolment_token(record)
    return EnrolmentTokenPublic(
        token=token,
        id=record.token_hash,
        max_devices=body.max_devices,
        expires_at=dt.datetime.fromtimestamp(expires_at, dt.UTC).isoformat(timespec="seconds"),
        label=body.label,
    )


async def rate_limit(store: Store, key: str, *, limit: int, window_s: int, what: str) -> None:
    """429 with Retry-After once `key` has had `limit` attempts in the current window."""
    retry = await store.hit_rate(key, limit=limit, window_s=window_s, now=time.time())
    if retry is not None:
        raise HTTPException(
            429,
            f"too many enrolment attempts {what}: at most {limit} per {window_s} s",
            headers={"Retry-After": str(max(1, math.ceil(retry)))},
        )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def token_info(record: EnrolmentTokenRecord) -> EnrolmentTokenInfoPublic:
    return EnrolmentTokenInfoPublic(
        id=record.token_hash,
        label=record.label,
        max_devices=record.max_devices,
        used=record.used,
        expires_at=_iso(record.expires_at),
        revoked=record.revoked,
    )


async def renew_device_token(
    store: Store, settings: Settings, *, device_id: str, credential: str | None
) -> tuple[str, int]:
    """A new token for a device that presents its current, unexpired one; (token, expires_at)."""
    if credential is None:
        raise HTTPException(401, "send Authorization: Bearer <device token>", headers=BEARER_CHALLENGE)
    new = new_device_token()
    expires_at = int(time.time()) + settings.device_token_ttl_s
    if not await store.renew_device_token(device_id, token_hash(credential), token_hash(new), expires_at=expires_at):
        raise HTTPException(
            401,
            "device token is not valid (unknown, expired or revoked): the device must be enrolled again",
            headers=BEARER_CHALLENGE,
        )
    return new, expires_at


async def enrol_device(
    store: Store, settings: Settings, *, device_id: str, credential: str | None, source: str
) -> tuple[str, int]:
    """Enrol `device_id` with an enrolment token; return its new device token (shown once, stored hashed) and
    when that token expires (unix seconds)."""
    window = settings.enrol_rate_window_s
    await rate_limit(store, f"enrol-src:{source}", limit=settings.enrol_rate_per_source, window_s=window,
                     what="from this address")  # fmt: skip
    if credential is None:
        raise HTTPException(
            401,
            "enrolment needs an operator-issued enrolment token: send Authorization: Bearer <enrolment token> "
            "(an admin creates one with POST /v1/enrolment-tokens)",
            headers=BEARER_CHALLENGE,
        )
    credential_hash = token_hash(credential)
    await rate_limit(store, f"enrol-tok:{credential_hash}", limit=settings.enrol_rate_per_token, window_s=window,
                     what="with this enrolment token")  # fmt: skip
    device_token = new_device_token()
    now = time.time()
    expires_at = int(now) + settings.device_token_ttl_s
    outcome = await store.enrol_device(
        device_id, token_hash(device_token), credential_hash, now=now, token_expires_at=expires_at
    )
    if outcome is EnrolOutcome.ENROLLED:
        return device_token, expires_at
    if outcome is EnrolOutcome.UNKNOWN_TOKEN:
        raise HTTPException(401, "enrolment token is not valid", headers=BEARER_CHALLENGE)
    if outcome is EnrolOutcome.REVOKED:
        raise HTTPException(401, "enrolment token was revoked by the operator", headers=BEARER_CHALLENGE)
    if outcome is EnrolOutcome.EXPIRED:
        raise HTTPException(401, "enrolment token has expired; ask the operator for a new one", BEARER_CHALLENGE)
    if outcome is EnrolOutcome.QUOTA_USED:
        raise HTTPException(403, "enrolment token has enrolled its max_devices devices; its quota is used up")
    raise HTTPException(409, f"device {device_id!r} is already enrolled")
