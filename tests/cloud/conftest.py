"""Cloud fixtures: every store-backed test runs twice, on SQLite and on a real Redis (127.0.0.1:6379, db 14)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.archive import pack_bundle
from service.common.offer import OfferPayload, open_offer
from service.common.signing import private_key_to_pem, public_key_from_b64

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def _test_redis_url() -> str:
    """The shared local Redis; EIBERT_TEST_REDIS_URL picks another database. Two runs at once must not share one
    (every test flushes it), and neither may two pytest-xdist workers of one run: worker gwN adds N to the db."""
    url = os.environ.get("EIBERT_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db or 0) + int(worker.removeprefix('gw'))) % 16}"


REDIS_URL = _test_redis_url()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GZIP = {"Content-Type": "application/gzip"}


def flush_test_redis() -> None:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        pytest.fail(
            "Redis is not reachable on 127.0.0.1:6379; start it with "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`"
        )
    r.flushdb()
    r.close()


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "redis":
        flush_test_redis()
        yield REDIS_URL
        flush_test_redis()
    else:
        yield f"sqlite:///{tmp_path / 'cloud.db'}"


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def settings(store_url: str, tmp_path: Path, signing_key: Ed25519PrivateKey) -> Settings:
    return Settings(
        store_url=store_url,
        data_dir=tmp_path / "data",
        admin_token=ADMIN_TOKEN,
        signing_key=private_key_to_pem(signing_key).decode(),
        max_model_bytes=10_000_000,  # the tiny test bundle's model.onnx is ~4 MB, above the 1.91 MB default
        k_min=3,
    )


def sqlite_settings(root: Path, **overrides) -> Settings:
    """Settings of a cloud on SQLite under `root`, with the test admin token and a fresh signing key."""
    values = {
        "store_url": f"sqlite:///{root / 'cloud.db'}",
        "data_dir": root / "data",
        "admin_token": ADMIN_TOKEN,
        "signing_key": private_key_to_pem(Ed25519PrivateKey.generate()).decode(),
        "max_model_bytes": 10_000_000,
        "k_min": 3,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_archive(tiny_bundle: Path) -> bytes:
    return pack_bundle(tiny_bundle)


@pytest.fixture(scope="session")
def make_variant(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], bytes]:
    """Archive of the tiny bundle under another manifest version (same files, so it still verifies)."""
    cache: dict[str, bytes] = {}

    def make(version: str) -> bytes:
        if version not in cache:
            out = tmp_path_factory.mktemp(f"variant-{version}")
            shutil.copytree(tiny_bundle, out, dirs_exist_ok=True)
            manifest = json.loads((out / "manifest.json").read_text())
            manifest["version"] = version
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
            cache[version] = pack_bundle(out)
        return cache[version]

    return make


def enrolment_token(client: TestClient, max_devices: int = 1, **body) -> str:
    """An operator-issued enrolment token (what POST /v1/devices requires)."""
    resp = client.post("/v1/enrolment-tokens", json={"max_devices": max_devices, **body}, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def enrol(client: TestClient, device_id: str, token: str | None = None) -> dict[str, str]:
    """Enrol with `token` (default: a fresh single-use enrolment token); the device's bearer header."""
    credential = token or enrolment_token(client)
    resp = client.post("/v1/devices", json={"device_id": device_id}, headers={"Authorization": f"Bearer {credential}"})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def open_offer_response(client: TestClient, resp) -> OfferPayload:
    """The payload of a device poll's 200, verified against the cloud's published signing key."""
    key = public_key_from_b64(client.get("/v1/signing-key").json()["public_key"])
    return open_offer(resp.content, key)


def publish(client: TestClient, archive: bytes) -> str:
    resp = client.post("/v1/models", content=archive, headers={**ADMIN, **GZIP})
    assert resp.status_code in (200, 201), resp.text
    return resp.json()["version"]


def roll_out(client: TestClient, version: str, percent: int = 100) -> None:
    resp = client.put("/v1/rollout", json={"version": version, "percent": percent}, headers=ADMIN)
    assert resp.status_code == 200, resp.text


def poll(client: TestClient, device_id: str, headers: dict[str, str]) -> str:
    """The device polls for its model (the cloud records the version it offers); returns that version."""
    resp = client.get(f"/v1/devices/{device_id}/model", headers=headers)
    assert resp.status_code == 200, resp.text
    return open_offer_response(client, resp).version


def enrol_offered(client: TestClient, device_id: str, token: str | None = None) -> dict[str, str]:
    """Enrol, then poll once: the device may now report under the version it was offered."""
    headers = enrol(client, device_id, token)
    poll(client, device_id, headers)
    return headers


@pytest.fixture
def dev_cloud(settings: Settings, tiny_archive: bytes) -> Iterator[tuple[TestClient, str]]:
    """A dev-mode cloud (its day can be advanced, to close groups), k_min = 3, one version rolled out to all."""
    with TestClient(create_app(settings.model_copy(update={"dev_mode": True}))) as client:
        version = publish(client, tiny_archive)
        roll_out(client, version)
        yield client, version
