"""The cloud's clock (service/cloud/clock.py): readable by anyone, advanced only by an admin of a dev-mode
cloud, only forward, kept in the store (so a restart or another replica agrees)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud.errors import StoreError
from service.common.signing import private_key_to_pem
from service.devstack.processes import free_port
from tests.cloud.conftest import ADMIN, ADMIN_TOKEN, REDIS_URL, flush_test_redis

UTC_TODAY = dt.datetime.now(dt.UTC).date()


def test_clock_shows_the_utc_date_and_window(client: TestClient) -> None:
    body = client.get("/v1/clock").json()
    assert body["today"] == body["utc_date"] == UTC_TODAY.isoformat()
    assert body["offset_days"] == 0 and body["report_window_days"] == 1 and body["advanceable"] is False


def test_advance_is_refused_outside_dev_mode(client: TestClient) -> None:
    resp = client.post("/v1/clock", json={"advance_days": 3}, headers=ADMIN)
    assert resp.status_code == 403 and "dev-mode" in resp.text
    assert client.get("/v1/clock").json()["offset_days"] == 0


def test_advance_needs_the_admin_token_and_moves_forward_only(settings: Settings) -> None:
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev)) as client:
        assert client.post("/v1/clock", json={"advance_days": 1}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
        assert client.post("/v1/clock", json={"advance_days": 1}, headers=wrong).status_code == 403
        for bad in (0, -1, 367, "x"):
            assert client.post("/v1/clock", json={"advance_days": bad}, headers=ADMIN).status_code == 422
        body = client.post("/v1/clock", json={"advance_days": 2}, headers=ADMIN).json()
        assert body["offset_days"] == 2 and body["advanceable"] is True
        assert body["today"] == (UTC_TODAY + dt.timedelta(days=2)).isoformat()
    # the offset lives in the store: a restarted (or another) cloud on it has the same day
    with TestClient(create_app(dev)) as again:
        assert again.get("/v1/clock").json()["offset_days"] == 2


def test_a_production_cloud_refuses_a_store_a_dev_cloud_marked_and_vice_versa(settings: Settings) -> None:
    """Issue 22: a dev-mode replica on a production store moved the day for every replica (the offset lives
    in the store), and a production cloud then ran on the advanced day. Now a store is marked by the first
    cloud's mode and deployment, and a cloud of another one refuses to start on it."""
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev)) as client:
        assert client.post("/v1/clock", json={"advance_days": 3}, headers=ADMIN).status_code == 200
    with pytest.raises(StoreError, match="'dev:default'"), TestClient(create_app(settings)):
        pass
    staging = dev.model_copy(update={"deployment": "staging"})  # nor a dev cloud of another deployment
    with pytest.raises(StoreError, match="'dev:default'"), TestClient(create_app(staging)):
        pass


def run_cloud(root: Path, name: str, *, dev: bool, prefix: str) -> subprocess.Popen:
    """`python -m service.cloud` on the shared test Redis under `prefix`, production unless `dev`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EIBERT_CLOUD_", "EIBERT_ADMIN_TOKEN"))}
    env |= {
        "EIBERT_ADMIN_TOKEN": ADMIN_TOKEN,
        "EIBERT_CLOUD_SIGNING_KEY": private_key_to_pem(Ed25519PrivateKey.generate()).decode(),
        "EIBERT_CLOUD_DATA_DIR": str(root / name),
        "EIBERT_CLOUD_REDIS_PREFIX": prefix,
    }
    args = ["--store", REDIS_URL, "--port", str(free_port())] + (["--dev"] if dev else [])
    log = (root / f"{name}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "service.cloud", *args], env=env, stdout=log, stderr=log)


def wait_ready(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the first cloud exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("cloud not ready")


@pytest.mark.parametrize("first_dev", [True, False], ids=["dev-first", "production-first"])
def test_two_cloud_processes_of_different_modes_never_share_one_redis_store(tmp_path: Path, first_dev: bool) -> None:
    """Two real clouds on one Redis (same prefix): whichever mode comes second refuses to start, with the
    reason, and the first one's day is untouched; on its own prefix the second one starts."""
    flush_test_redis()
    prefix = f"clock-{uuid.uuid4().hex[:8]}:"
    first = run_cloud(tmp_path, "first", dev=first_dev, prefix=prefix)
    try:
        url = f"http://127.0.0.1:{first.args[first.args.index('--port') + 1]}"
        wait_ready(first, url)
        if first_dev:
            assert httpx.post(f"{url}/v1/clock", json={"advance_days": 5}, headers=ADMIN).status_code == 200
        second = run_cloud(tmp_path, "second", dev=not first_dev, prefix=prefix)
        try:
            assert second.wait(timeout=60) != 0
        except subprocess.TimeoutExpired:  # it started on the first one's store: the failure this test is for
            second.kill()
            second.wait(timeout=30)
            raise AssertionError("a cloud of the other mode started on the first one's store") from None
        log = (tmp_path / "second.log").read_text()
        assert "refuses to use it" in log and ("dev:default" if first_dev else "production:default") in log
        assert httpx.get(f"{url}/v1/clock").json()["offset_days"] == (5 if first_dev else 0)
        own = run_cloud(tmp_path, "own", dev=not first_dev, prefix=prefix + "own:")
        try:
            wait_ready(own, f"http://127.0.0.1:{own.args[own.args.index('--port') + 1]}")
        finally:
            own.terminate()
            own.wait(timeout=30)
    finally:
        first.terminate()
        first.wait(timeout=30)
        flush_test_redis()
