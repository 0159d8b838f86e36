"""An edge node's device token after enrolment: when to renew it and the renewal call.

Device tokens expire (the cloud's `device_token_ttl_s`). Past half its life the node swaps its token for a new
one (`POST /v1/devices/{id}/token`); the cloud stops the old one at once, so the caller persists the new one
before it uses it. A failed call (network, an unreadable answer) keeps the current token, which stays valid
until it expires; a refusal means the operator revoked the device, or the token lapsed while it was offline.
"""

from __future__ import annotations

import logging

import httpx

from service.common import device_client
from service.common.device_api import DeviceEnrolResponse, token_path
from service.common.device_client import ResponseRefused
from service.edge.update_protocol import UpdateFailed, validated

log = logging.getLogger(__name__)


def renewal_due(issued: float | None, expires: float | None, now: float) -> bool:
    """Past half the token's life (never for a token without an expiry)."""
    return issued is not None and expires is not None and now >= issued + (expires - issued) / 2


async def renew(client: httpx.AsyncClient, device_id: str, token: str) -> DeviceEnrolResponse | None:
    """The cloud's new token for this device; None if the cloud could not be asked (keep the current one);
    UpdateFailed(enrol) if it refused."""
    try:
        resp = await device_client.arequest(
            client,
            "POST",
            token_path(device_id),
            cap=device_client.ENROL_MAX_BYTES,
            headers={"Authorization": f"Bearer {token}"},
        )
    except (httpx.HTTPError, ResponseRefused) as exc:
        log.warning("device token renewal failed, keeping the current one: %s", exc)
        return None
    if resp.status_code != 200:
        raise UpdateFailed(
            "enrol",
            f"device token renewal refused (HTTP {resp.status_code}): revoked or expired; the operator must enrol "
            "this node again (a new enrolment token and device id)",
        )
    renewed = validated(DeviceEnrolResponse, resp.content, stage="enrol", what="malformed token renewal")
    if renewed.device_id != device_id:
        raise UpdateFailed("enrol", f"cloud renewed {renewed.device_id!r}, not {device_id!r}")
    log.info("device token renewed (expires at %s, unix seconds)", renewed.expires_at)
    return renewed
