"""Enrolment needs an operator-issued enrolment token (service/cloud/enrolment.py): anonymous enrolment is
refused, every token has a quota and an expiry, and attempts are rate-limited per address and per token."""

from __future__ import annotations

import datetime as dt
import os
import types
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud import enrolment as enrolment_module
from service.common.ldp import encode_report
from service.devstack.processes import free_port, service_process
from tests.cloud.conftest import ADMIN, enrolment_token, publish, roll_out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate windows are fixed (aligned) windows: freeze the clock mid-window, so a test never straddles two."""
    import time

    now = time.time()
    now -= now % 3600 - 1800
    monkeypatch.setattr(enrolment_module, "time", types.SimpleNamespace(time=lambda: now))


def test_anonymous_enrolment_is_refused(client: TestClient) -> None:
    resp = client.post("/v1/devices", json={"device_id": "phone-1"})
    assert resp.status_code == 401 and "enrolment token" in resp.text
    assert resp.headers["www-authenticate"] == "Bearer"
    forged = client.post("/v1/devices", json={"device_id": "phone-1"}, headers=bearer("forged-enrolment-token"))
    assert forged.status_code == 401 and "not valid" in forged.text
    # neither a device token nor the admin token is an enrolment token
    assert client.post("/v1/devices", json={"device_id": "phone-1"}, headers=ADMIN).status_code == 401


@pytest.mark.usefixtures("frozen_time")
def test_a_thousand_anonymous_enrolments_create_nothing(client: TestClient, settings: Settings) -> None:
    """Issue 11: 1,000 anonymous POST /v1/devices were all 201. Now none is, and past the per-address limit
    the cloud answers 429 with Retry-After without even looking at the credential."""
    statuses = [client.post("/v1/devices", json={"device_id": f"sybil-{i}"}).status_code for i in range(1000)]
    assert statuses.count(201) == 0
    assert statuses.count(401) == settings.enrol_rate_per_source and statuses.count(429) == 1000 - statuses.count(401)
    limited = client.post("/v1/devices", json={"device_id": "sybil-x"})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= settings.enrol_rate_window_s
    assert "too many enrolment attempts from this address" in limited.text


@pytest.mark.usefixtures("frozen_time")
def test_a_thousand_enrolments_with_a_token_are_bounded(client: TestClient, settings: Settings) -> None:
    """Even with a valid token, minting is bounded: here by the per-address rate (its quota is 1,000)."""
    token = enrolment_token(client, max_devices=1000)
    statuses = [
        client.post("/v1/devices", json={"device_id": f"d-{i}"}, headers=bearer(token)).status_code for i in range(1000)
    ]
    assert statuses.count(201) == settings.enrol_rate_per_source and statuses.count(429) == 1000 - statuses.count(201)


def test_quota_is_enforced(client: TestClient) -> None:
    token = enrolment_token(client, max_devices=3)
    codes = [client.post("/v1/devices", json={"device_id": f"d-{i}"}, headers=bearer(token)) for i in range(4)]
    assert [r.status_code for r in codes] == [201, 201, 201, 403]
    assert "quota" in codes[3].text
    # a taken device id costs no quota (409); a second token has its own quota
    other = enrolment_token(client, max_devices=1)
    assert client.post("/v1/devices", json={"device_id": "d-0"}, headers=bearer(other)).status_code == 409
    assert client.post("/v1/devices", json={"device_id": "d-9"}, headers=bearer(other)).status_code == 201


def test_expired_token_is_refused(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = enrolment_token(client, max_devices=5, expires_in_s=60)
    import time

    later = time.time() + 61
    monkeypatch.setattr(enrolment_module, "time", types.SimpleNamespace(time=lambda: later))
    resp = client.post("/v1/devices", json={"device_id": "d-1"}, headers=bearer(token))
    assert resp.status_code == 401 and "expired" in resp.text


@pytest.mark.usefixtures("frozen_time")
def test_rate_limit_per_token(settings: Settings) -> None:
    limited = settings.model_copy(update={"enrol_rate_per_source": 1000, "enrol_rate_per_token": 5})
    with TestClient(create_app(limited)) as client:
        token = enrolment_token(client, max_devices=100)
        codes = [
            client.post("/v1/devices", json={"device_id": f"d-{i}"}, headers=bearer(token)).status_code
            for i in range(7)
        ]
        assert codes == [201] * 5 + [429] * 2
        resp = client.post("/v1/devices", json={"device_id": "d-x"}, headers=bearer(token))
        assert "with this enrolment token" in resp.text and int(resp.headers["retry-after"]) >= 1
        # another token is not limited by this one's attempts
        fresh = enrolment_token(client, max_devices=1)
        assert client.post("/v1/devices", json={"device_id": "d-y"}, headers=bearer(fresh)).status_code == 201


def test_enrolment_tokens_are_admin_only_and_bounded(client: TestClient, settings: Settings) -> None:
    assert client.post("/v1/enrolment-tokens", json={"max_devices": 1}).status_code == 401
    wrong = bearer("not-the-admin-token-at-all")
    assert client.post("/v1/enrolment-tokens", json={"max_devices": 1}, headers=wrong).status_code == 403
    too_many = {"max_devices": settings.max_enrolment_token_devices + 1}
    resp = client.post("/v1/enrolment-tokens", json=too_many, headers=ADMIN)
    assert resp.status_code == 422 and "at most" in resp.text
    for bad in ({"max_devices": 0}, {"max_devices": 1, "expires_in_s": 1}, {"max_devices": 1, "x": 1}):
        assert client.post("/v1/enrolment-tokens", json=bad, headers=ADMIN).status_code == 422
    body = client.post("/v1/enrolment-tokens", json={"max_devices": 2, "label": "factory-7"}, headers=ADMIN).json()
    assert len(body["token"]) >= 40 and body["max_devices"] == 2 and body["label"] == "factory-7"


def test_device_tokens_expire_and_a_renewal_replaces_them(settings: Settings, tiny_archive: bytes) -> None:
    """Issue 22: device tokens never expired. Now a token stops working `device_token_ttl_s` after it was
    issued, everywhere a device token is checked; before then the device renews it (the old one stops at once)
    and the new one carries its own expiry. An expired token cannot renew itself."""
    import time

    ttl = 3
    with TestClient(create_app(settings.model_copy(update={"device_token_ttl_s": ttl}))) as client:
        version = publish(client, tiny_archive)
        roll_out(client, version)
        resp = client.post("/v1/devices", json={"device_id": "p1"}, headers=bearer(enrolment_token(client)))
        first = resp.json()
        assert abs(first["expires_at"] - (time.time() + ttl)) < 2
        assert client.get("/v1/devices/p1/model", headers=bearer(first["token"])).status_code == 200
        renewed = client.post("/v1/devices/p1/token", headers=bearer(first["token"]))
        assert renewed.status_code == 200, renewed.text
        second = renewed.json()
        assert second["token"] != first["token"] and second["expires_at"] >= first["expires_at"]
        assert client.get("/v1/devices/p1/model", headers=bearer(first["token"])).status_code == 401  # at once
        assert client.post("/v1/devices/p1/token", headers=bearer(first["token"])).status_code == 401
        assert client.post("/v1/devices/p2/token", headers=bearer(second["token"])).status_code == 401  # not p2's
        assert client.get("/v1/devices/p1/model", headers=bearer(second["token"])).status_code == 200
        time.sleep(second["expires_at"] - time.time() + 0.5)
        report = encode_report(
            "top_genre", "Drama", model_version=version, day=dt.datetime.now(dt.UTC).date().isoformat()
        )
        for resp in (
            client.get("/v1/devices/p1/model", headers=bearer(second["token"])),
            client.post(
                "/v1/telemetry", json={"reports": [report.model_dump(mode="json")]}, headers=bearer(second["token"])
            ),
            client.post("/v1/devices/p1/token", headers=bearer(second["token"])),
        ):
            assert resp.status_code == 401, resp.text


def test_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_per_source_limit(tmp_path: Path) -> None:
    """Issue 22: 200 enrolments from one TCP peer, each with another X-Forwarded-For, were never limited (60 per
    source per minute): uvicorn believed the header from loopback by default. A real `python -m service.cloud`
    (which proxies are believed when some are configured: tests/common/test_http_server.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EIBERT_CLOUD_", "EIBERT_ADMIN_TOKEN"))}
    env |= {"EIBERT_CLOUD_DEV_MODE": "1", "EIBERT_CLOUD_DATA_DIR": str(tmp_path / "data")}
    port = free_port()
    args = ["--store", f"sqlite:///{tmp_path / 'cloud.db'}", "--port", str(port)]
    with (
        service_process("cloud", args, port=port, env=env, log_path=tmp_path / "cloud.log") as cloud,
        httpx.Client(base_url=cloud.url, headers=bearer("not-an-enrolment-token")) as http,
    ):
        statuses = [
            http.post(
                "/v1/devices", json={"device_id": f"phone-{i}"}, headers={"X-Forwarded-For": f"203.0.113.{i % 250}"}
            ).status_code
            for i in range(200)
        ]
    limited = statuses.count(429)  # 60 per aligned 60 s window, so at most 120 get through across two windows
    assert limited >= 80 and set(statuses) == {401, 429}, f"only {limited} of 200 limited"
