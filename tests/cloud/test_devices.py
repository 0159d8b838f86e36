"""Enrolment and the device polling path, on both stores: tokens, 401/403, signed manifest, ETag/304."""

from __future__ import annotations

import hashlib
import time

from fastapi.testclient import TestClient

from service.cloud import Settings
from service.common.device_api import blob_path
from tests.cloud.conftest import ADMIN, enrol, enrolment_token, open_offer_response, publish


def test_enrol_issues_a_token_stored_only_hashed(client: TestClient, settings: Settings) -> None:
    credential = enrolment_token(client, max_devices=3)
    with_credential = {"Authorization": f"Bearer {credential}"}
    resp = client.post("/v1/devices", json={"device_id": "phone-1"}, headers=with_credential)
    assert resp.status_code == 201
    token = resp.json()["token"]
    assert len(token) >= 40
    assert client.post("/v1/devices", json={"device_id": "phone-1"}, headers=with_credential).status_code == 409
    other = client.post("/v1/devices", json={"device_id": "phone-2"}, headers=with_credential).json()["token"]
    assert other != token
    # the store holds the sha256s, never the device token or the enrolment token itself
    raw_dump = _dump_store(settings)
    assert token not in raw_dump and hashlib.sha256(token.encode()).hexdigest() in raw_dump
    assert credential not in raw_dump and hashlib.sha256(credential.encode()).hexdigest() in raw_dump


def _dump_store(settings: Settings) -> str:
    url = settings.resolved_store_url()
    if url.startswith("redis://"):
        import redis

        r = redis.Redis.from_url(url, decode_responses=True)
        out = [f"{k}={r.get(k)}" for k in r.scan_iter("*") if r.type(k) == "string"]
        out += [f"{k}" for k in r.scan_iter("*") if r.type(k) == "hash"]
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


def test_model_poll_returns_a_signed_offer_of_files_by_content_address(
    client: TestClient, tiny_archive: bytes, settings: Settings
) -> None:
    version = publish(client, tiny_archive)
    rollout = client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN).json()
    h = enrol(client, "phone-1")
    resp = client.get("/v1/devices/phone-1/model", headers=h)
    assert resp.status_code == 200 and set(resp.json()) == {"payload_type", "payload", "signature"}
    offer = open_offer_response(client, resp)  # verified against /v1/signing-key before it is parsed
    assert offer.version == version and offer.generation == rollout["generation"]
    assert offer.expires - offer.issued == settings.offer_ttl_s and offer.issued <= time.time() < offer.expires
    registered = client.get(f"/v1/models/{version}").json()["manifest"]
    assert offer.manifest == registered
    for name, entry in offer.manifest["files"].items():  # every file, by the sha256 and length signed
        blob = client.get(blob_path(entry["sha256"]))
        assert blob.status_code == 200, name
        assert hashlib.sha256(blob.content).hexdigest() == entry["sha256"] and len(blob.content) == entry["bytes"]
        assert (
            client.get(blob_path(entry["sha256"]), headers={"If-None-Match": blob.headers["etag"]}).status_code == 304
        )
    assert client.get(blob_path("0" * 64)).status_code == 404
    assert client.get(blob_path("not-a-digest")).status_code == 422

    etag = resp.headers["etag"]
    not_modified = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    weak_list = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": f'"x", W/{etag}'})
    assert weak_list.status_code == 304
    stale = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and stale.content == resp.content  # same window: byte-identical
    # an unauthenticated If-None-Match learns nothing
    assert client.get("/v1/devices/phone-1/model", headers={"If-None-Match": etag}).status_code == 401


def test_offers_are_re_signed_each_half_lifetime_so_devices_refresh_their_expiry(
    client: TestClient, tiny_archive: bytes, settings: Settings
) -> None:
    version = publish(client, tiny_archive)
    client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN)
    h = enrol(client, "phone-1")
    registry = client.app.state.ctx.registry
    first = client.get("/v1/devices/phone-1/model", headers=h)
    half = settings.offer_ttl_s // 2
    start = open_offer_response(client, first).issued
    registry.clock = lambda: start + half - 1  # still the same window: 304
    same = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": first.headers["etag"]})
    assert same.status_code == 304
    registry.clock = lambda: start + half  # the window turned: a fresh signature, so a 200 with a new ETag
    fresh = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": first.headers["etag"]})
    assert fresh.status_code == 200 and fresh.headers["etag"] != first.headers["etag"]
    renewed = open_offer_response(client, fresh)
    assert renewed.issued == start + half and renewed.expires == start + half + settings.offer_ttl_s
    assert renewed.generation == open_offer_response(client, first).generation  # same rollout state


def test_a_rollout_transition_raises_the_signed_generation(client: TestClient, make_variant) -> None:
    v1, v2 = publish(client, make_variant("1.0.0")), publish(client, make_variant("2.0.0"))
    h = enrol(client, "phone-1")
    gens = []
    for step in (("PUT", {"version": v1, "percent": 100}), ("PUT", {"version": v2, "percent": 100}), ("POST", None)):
        method, body = step
        if method == "PUT":
            client.put("/v1/rollout", json=body, headers=ADMIN)
        else:
            client.post("/v1/rollback", headers=ADMIN)
        offer = open_offer_response(client, client.get("/v1/devices/phone-1/model", headers=h))
        gens.append((offer.version, offer.generation))
    assert [v for v, _ in gens] == [v1, v2, v1]  # the rollback goes back to v1 ...
    assert gens[0][1] < gens[1][1] < gens[2][1]  # ... at a higher generation, so devices accept it


def test_etag_changes_when_the_assignment_changes(client: TestClient, make_variant) -> None:
    v1, v2 = publish(client, make_variant("1.0.0")), publish(client, make_variant("2.0.0"))
    client.put("/v1/rollout", json={"version": v1, "percent": 100}, headers=ADMIN)
    h = enrol(client, "phone-1")
    etag1 = client.get("/v1/devices/phone-1/model", headers=h).headers["etag"]
    client.put("/v1/rollout", json={"version": v2, "percent": 100}, headers=ADMIN)
    resp = client.get("/v1/devices/phone-1/model", headers={**h, "If-None-Match": etag1})
    assert resp.status_code == 200 and open_offer_response(client, resp).version == v2
    assert resp.headers["etag"] != etag1


def test_an_offer_made_by_a_rollout_is_issued_when_the_rollout_happened(
    client: TestClient, tiny_archive: bytes, settings: Settings
) -> None:
    """Issue windows start at the rollout transition, so a device's metadata age right after a rollout is seconds
    (it read up to offer_ttl_s / 2, 12 h by default, when windows were aligned to the epoch)."""
    version = publish(client, tiny_archive)
    client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN)
    h = enrol(client, "phone-1")
    offer = open_offer_response(client, client.get("/v1/devices/phone-1/model", headers=h))
    age = time.time() - offer.issued  # epoch-aligned windows: uniform in [0, 12 h), under 60 s once in 720 runs
    assert 0 <= age < 60, f"a fresh offer reads as {age:.0f} s old"
    assert offer.expires - offer.issued == settings.offer_ttl_s
