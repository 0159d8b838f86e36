"""Two real cloud processes (`python -m service.cloud`) on one Redis serve each other's uploads (issue 13, item 6).

Nothing is shared between the replicas but the store and the signing key file: each has its own data dir
(so its own blob cache) and its own port. A bundle published through one is resolved, verified and downloaded
through the other, and telemetry split across both is counted once and charged once. The last test shows the
check can fail: a replica whose store differs (as every replica's blob directory used to be) answers 404.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.cloud_admin import CloudAdmin, publish_bundle
from service.common.device_api import blob_path
from service.common.ldp import encode_report
from service.common.offer import OfferPayload, open_offer
from service.common.signing import private_key_to_pem, public_key_to_b64
from service.devstack.processes import free_port, service_process
from tests.cloud.conftest import ADMIN, ADMIN_TOKEN, REDIS_URL, enrol, enrolment_token, flush_test_redis

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Ed25519PrivateKey]:
    """The one signing key file every replica is given (as a load balancer's replicas would mount it)."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path_factory.mktemp("secrets") / "signing-key.pem"
    path.write_bytes(private_key_to_pem(key))
    return path, key


@contextlib.contextmanager
def replica(name: str, store_url: str, key: Path, root: Path) -> Iterator[str]:
    """One `python -m service.cloud` on its own port and data dir; yields its base URL once it is ready."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EIBERT_CLOUD_", "EIBERT_ADMIN_TOKEN"))}
    env |= {
        "EIBERT_ADMIN_TOKEN": ADMIN_TOKEN,
        "EIBERT_CLOUD_SIGNING_KEY_FILE": str(key),
        "EIBERT_CLOUD_DATA_DIR": str(root / name / "data"),  # private: nothing on disk is shared
        "EIBERT_CLOUD_MAX_MODEL_BYTES": "10000000",  # the tiny bundle's model.onnx is ~4 MB
        "EIBERT_CLOUD_K_MIN": "3",
        "EIBERT_CLOUD_DEV_MODE": "1",  # an advanceable clock, to close and release today's group
    }
    (root / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = ["--store", store_url, "--port", str(port)]
    with service_process("cloud", args, port=port, env=env, log_path=root / name / "cloud.log") as cloud:
        yield cloud.url


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, key_file: tuple[Path, Ed25519PrivateKey]
) -> Iterator[tuple[str, str]]:
    flush_test_redis()
    root = tmp_path_factory.mktemp("replicas")
    with replica("one", REDIS_URL, key_file[0], root) as one, replica("two", REDIS_URL, key_file[0], root) as two:
        yield one, two
    flush_test_redis()


@pytest.fixture(scope="module")
def published(replicas: tuple[str, str], tiny_bundle: Path) -> str:
    """The tiny bundle, uploaded through replica one only, and rolled out to everyone through replica two."""
    one, two = replicas
    version = publish_bundle(tiny_bundle, one, ADMIN_TOKEN)["version"]
    with CloudAdmin(two, ADMIN_TOKEN) as admin:
        admin.set_rollout(version, 100)
    return version


def resolve_offer(http: httpx.Client, device: str, headers: dict[str, str], key: Ed25519PrivateKey) -> OfferPayload:
    """A device's poll, its signature checked with the shared signing key before anything is parsed."""
    resp = http.get(f"/v1/devices/{device}/model", headers=headers)
    assert resp.status_code == 200, resp.text
    return open_offer(resp.content, key.public_key())


def assert_serves_every_file(http: httpx.Client, offer: OfferPayload) -> None:
    """Every file the signed manifest pins, fetched by sha256, has exactly the signed hash and length."""
    for name, entry in offer.manifest["files"].items():
        blob = http.get(blob_path(entry["sha256"]))
        assert blob.status_code == 200, f"{name}: {blob.status_code} from {http.base_url}"
        assert hashlib.sha256(blob.content).hexdigest() == entry["sha256"] and len(blob.content) == entry["bytes"]


def test_a_bundle_uploaded_through_one_replica_is_served_by_the_other(
    replicas: tuple[str, str], published: str, key_file: tuple[Path, Ed25519PrivateKey], tiny_bundle: Path
) -> None:
    one, two = replicas
    key = key_file[1]
    with httpx.Client(base_url=one) as h1, httpx.Client(base_url=two) as h2:
        assert h2.get(f"/v1/models/{published}").json()["version"] == published
        assert h1.get("/v1/signing-key").json() == h2.get("/v1/signing-key").json()
        assert h2.get("/v1/signing-key").json()["public_key"] == public_key_to_b64(key.public_key())
        device = enrol(h1, "replica-phone", enrolment_token(h2))  # token issued by two, used on one
        offer = resolve_offer(h2, "replica-phone", device, key)
        assert offer.version == published
        assert offer.manifest == h1.get(f"/v1/models/{published}").json()["manifest"]
        assert_serves_every_file(h2, offer)
        for name, entry in offer.manifest["files"].items():  # byte for byte what was published
            assert (tiny_bundle / name).read_bytes() == h2.get(blob_path(entry["sha256"])).content
        archive = h2.get(f"/v1/models/{published}/bundle")
        assert archive.status_code == 200
        assert archive.headers["etag"] == f'"{hashlib.sha256(archive.content).hexdigest()}"'
        part = h2.get(f"/v1/models/{published}/bundle", headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and part.content == archive.content[10:110]


def report(version: str, metric: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    value = {"top_genre": "Drama", "latency_bucket": "<5ms", "top_item_clicked": True}[metric]
    r = encode_report(metric, value, model_version=version, day=TODAY.isoformat(), rng=rng)
    return r.model_dump(mode="json")


def statuses(http: httpx.Client, headers: dict[str, str], *reports: dict) -> list[str]:
    resp = http.post("/v1/telemetry", json={"reports": list(reports)}, headers=headers)
    assert resp.status_code == 200, resp.text
    return [r["status"] for r in resp.json()["results"]]


def test_telemetry_split_across_replicas_is_counted_once_and_budgeted_once(
    replicas: tuple[str, str], published: str, key_file: tuple[Path, Ed25519PrivateKey]
) -> None:
    one, two = replicas
    with httpx.Client(base_url=one) as h1, httpx.Client(base_url=two) as h2:
        token = enrolment_token(h1, max_devices=3)
        phones = [enrol(h1 if i % 2 else h2, f"tele-{i}", token) for i in range(3)]
        for i, phone in enumerate(phones):  # offered through one replica, reporting through both
            assert resolve_offer(h2 if i % 2 else h1, f"tele-{i}", phone, key_file[1]).version == published
        a, b = report(published, "top_genre", 1), report(published, "latency_bucket", 2)
        assert statuses(h1, phones[0], a) == ["accepted"]
        assert statuses(h2, phones[0], a, b) == ["duplicate", "accepted"]  # one's id, seen by two
        assert statuses(h1, phones[0], b) == ["duplicate"]
        # one report per device and group, on either replica: another id into a's group is a repeat
        assert statuses(h2, phones[0], report(published, "top_genre", 3)) == ["refused"]
        assert statuses(h1, phones[0], report(published, "latency_bucket", 4)) == ["refused"]
        assert statuses(h2, phones[0], report(published, "top_item_clicked", 5)) == ["accepted"]  # 1.0 exactly
        for i, phone in enumerate(phones[1:], start=1):  # each report sent to both replicas: counted once
            r = report(published, "top_genre", 10 + i)
            assert statuses(h1, phone, r) == ["accepted"] and statuses(h2, phone, r) == ["duplicate"]
        assert h1.post("/v1/clock", json={"advance_days": 2}, headers=ADMIN).status_code == 200  # closes today
        released = h2.get("/v1/fleet/metrics", params={"metric": "top_genre"}).json()["data"]
        assert [(g["status"], g["devices"], g["reports"]) for g in released] == [("released", 3, 3)]
        assert h1.get("/v1/fleet/metrics", params={"metric": "top_genre"}).json()["data"] == released


def test_a_replica_on_another_store_cannot_serve_the_upload_and_the_check_says_so(
    replicas: tuple[str, str],
    published: str,
    key_file: tuple[Path, Ed25519PrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """What a per-replica blob directory amounted to: the assertion above fails on a replica that lacks them."""
    one, _two = replicas
    root = tmp_path_factory.mktemp("stray")
    with (
        replica("stray", f"sqlite:///{root / 'own.db'}", key_file[0], root) as stray,
        httpx.Client(base_url=one) as h1,
        httpx.Client(base_url=stray) as h3,
    ):
        offer = resolve_offer(h1, "replica-phone-2", enrol(h1, "replica-phone-2", enrolment_token(h1)), key_file[1])
        assert_serves_every_file(h1, offer)  # the replicas on the shared store serve it
        with pytest.raises(AssertionError, match="404"):
            assert_serves_every_file(h3, offer)


def run_cli(*argv: str) -> dict:
    """`eibert <argv>` as an operator runs it (admin token from the environment); its one JSON line."""
    out = subprocess.run(
        [sys.executable, "-m", "eibert", *argv],
        env={**os.environ, "EIBERT_ADMIN_TOKEN": ADMIN_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_device_revoked_through_one_replica_is_refused_by_the_other_at_once(
    replicas: tuple[str, str], published: str, key_file: tuple[Path, Ed25519PrivateKey]
) -> None:
    """Issue 22: device tokens could not be revoked. `eibert devices revoke` through replica one: the very next
    poll and telemetry through replica two answer 401 (the check reads the shared store), the id cannot enrol
    again, and another device of the same token is untouched."""
    one, two = replicas
    with httpx.Client(base_url=one) as h1, httpx.Client(base_url=two) as h2:
        token = enrolment_token(h1, max_devices=3)
        victim, other = enrol(h1, "stolen-1", token), enrol(h2, "kept-1", token)
        assert resolve_offer(h2, "stolen-1", victim, key_file[1]).version == published
        assert run_cli("devices", "revoke", "stolen-1", "--cloud", one) == {"revoked": "stolen-1"}
        assert h2.get("/v1/devices/stolen-1/model", headers=victim).status_code == 401
        body = {"reports": [report(published, "top_genre", 1)]}
        assert h2.post("/v1/telemetry", json=body, headers=victim).status_code == 401
        assert h2.post("/v1/devices/stolen-1/token", headers=victim).status_code == 401  # nor renew itself back
        again = h1.post("/v1/devices", json={"device_id": "stolen-1"}, headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 409
        assert resolve_offer(h1, "kept-1", other, key_file[1]).version == published
        assert h2.delete("/v1/devices/nobody", headers=ADMIN).status_code == 404


def test_an_enrolment_token_revoked_through_one_replica_enrols_nobody_on_the_other(replicas: tuple[str, str]) -> None:
    """Issue 22: enrolment tokens could not be listed or revoked. `eibert enrolment-tokens issue/list/revoke`:
    the listing shows no secret, only the id; after revoke, enrolment through the other replica is 401."""
    one, two = replicas
    issued = run_cli("enrolment-tokens", "issue", "--max-devices", "2", "--label", "line 7", "--cloud", one)
    with httpx.Client(base_url=two) as h2:
        enrol(h2, "line7-a", issued["token"])
        listed = run_cli("enrolment-tokens", "list", "--cloud", two)
        (mine,) = [t for t in listed["data"] if t["id"] == issued["id"]]
        assert (mine["label"], mine["used"], mine["max_devices"], mine["revoked"]) == ("line 7", 1, 2, False)
        assert issued["token"] not in json.dumps(listed)
        assert run_cli("enrolment-tokens", "revoke", issued["id"], "--cloud", one) == {"revoked": issued["id"]}
        resp = h2.post(
            "/v1/devices", json={"device_id": "line7-b"}, headers={"Authorization": f"Bearer {issued['token']}"}
        )
        assert resp.status_code == 401 and "revoked" in resp.json()["message"]
        listed = run_cli("enrolment-tokens", "list", "--cloud", one)
        assert [t["revoked"] for t in listed["data"] if t["id"] == issued["id"]] == [True]
        assert h2.delete(f"/v1/enrolment-tokens/{'0' * 64}", headers=ADMIN).status_code == 404
        assert h2.get("/v1/enrolment-tokens").status_code == 401
