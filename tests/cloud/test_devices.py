"""Enrolment and the device polling path, on both stores: tokens, 401/403, signed manifest, ETag/304."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from service.cloud import Settings
from service.common.device_api import DeviceModelResponse
from service.common.signing import public_key_from_b64, verify_manifest_signature
from tests.cloud.conftest import ADMIN, enrol, publish


def test_enrol_issues_a_token_stored_only_hashed(client: TestClient, settings: Settings) -> None:
    resp = client.post("/v1/devices", json={"device_id": "phone-1"})
    assert resp.status_code == 201
    token = resp.json()["token"]
    assert len(token) >= 40
    assert client.post("/v1/devices", json={"device_id": "phone-1"}).status_code == 409
    other = client.post("/v1/devices", json={"device_id": "phone-2"}).json()["token"]
    assert other != token
    # the store holds the sha256, never the token itself
    raw_dump = _dump_store(settings)
    assert token not in raw_dump and hashlib.sha256(token.encode()).hexdigest() in raw_dump


def _dump_store(settings: Settings) -> str:
    url = settings.resolved_store_url()
    if url.startswith("redis://"):
        import redis

        r = redis.Redis.from_url(url, decode_responses=True)
        out = [f"{k}={r.get(k)}" for k in r.scan_iter("*") if r.type(k) == "string"]
        r.close()
        return "\n".join(out)
    import sqlite3

    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    out = "\n".join(conn.iterdump())
    conn.close()
    return out


def test_enrol_validates_the_device_id(client: TestClient) -> None:
    for body in ({"device_id": ""}, {"device_id": "a b"}, {"device_id": "x" * 129}, {}, {"device_id": "ok", "y": 1}):
        resp = client.post("/v1/devices", json=body)
        assert resp.status_code == 422
        assert resp.json()["message"]
    assert (
        client.post("/v1/devices", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 422
    )


def test_model_poll_auth(client: TestClient, tiny_archive: bytes) -> None:
    h1, h2 = enrol(client, "phone-1"), enrol(client, "phone-2")
    assert client.get("/v1/devices/phone-1/model").status_code == 401
    assert client.get("/v1/devices/phone-1/model", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert client.get("/v1/devices/phone-1/model", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/v1/devices/phone-1/model", headers=h2).status_code == 403
    assert client.get("/v1/devices/ghost/model", headers=h2).status_code == 403
    nothing = client.get("/v1/devices/phone-1/model", headers=h1)
    assert nothing.status_code == 404 and "no model version" in nothing.json()["message"]
    assert client.get("/v1/devices/phone-1/model").headers["www-authenticate"] == "Bearer"
    bad_id = client.get("/v1/devices/bad%20id!/model", headers=h1)
    assert bad_id.status_code == 422 and "device_id" in bad_id.json()["message"]


def test_model_poll_returns_signed_manifest_with_etag(client: TestClient, tiny_archive: bytes) -> None:
    version = publish(client, tiny_archive)
    client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN)
    h = enrol(client, "phone-1")
    resp = client.get("/v1/devices/phone-1/model", headers=h)
    assert resp.status_code == 200
    model = DeviceModelResponse.model_validate(resp.json())
    assert model.version == version
    assert model.bundle_url == f"/v1/models/{version}/bundle"
    key = public_key_from_b64(client.get("/v1/signing-key").json()["public_key"])
    verify_manifest_signature(model.manifest, model.signature, key)

    bundle = client.get(model.bundle_url)
    assert hashlib.sha256(bundle.content).hexdigest() == model.bundle_sha256
    assert len(bundle.content) == model.bundle_bytes

    etag = resp.headers["etag"]
    not_modified = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    weak_list = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": f'"x", W/{etag}'})
    assert weak_list.status_code == 304
    stale = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    # an unauthenticated If-None-Match learns nothing
    assert client.get("/v1/devices/phone-1/model", headers={"If-None-Match": etag}).status_code == 401


def test_etag_changes_when_the_assignment_changes(client: TestClient, make_variant) -> None:
    v1, v2 = publish(client, make_variant("1.0.0")), publish(client, make_variant("2.0.0"))
    client.put("/v1/rollout", json={"version": v1, "percent": 100}, headers=ADMIN)
    h = enrol(client, "phone-1")
    etag1 = client.get("/v1/devices/phone-1/model", headers=h).headers["etag"]
    client.put("/v1/rollout", json={"version": v2, "percent": 100}, headers=ADMIN)
    resp = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": etag1})
    assert resp.status_code == 200 and resp.json()["version"] == v2
    assert resp.headers["etag"] != etag1
