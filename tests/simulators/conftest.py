"""A real cloud (and an edge node) served by uvicorn on free ports in background threads: simulated devices
reach the cloud only over HTTP, so the fixtures give them real sockets, not an ASGI shortcut."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from service.cloud import Settings, create_app
from service.common.signing import private_key_to_pem, public_key_to_b64
from service.devstack.processes import free_port, wait_until

ADMIN_TOKEN = "sim-test-admin-token-0123456789"
VARIANT_VERSION = "0.0.2"


@dataclass
class Served:
    url: str
    server: uvicorn.Server
    thread: threading.Thread


def serve(app: FastAPI) -> Served:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "uvicorn", timeout_s=30)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    return Served(f"http://127.0.0.1:{port}", server, thread)


def stop(served: Served) -> None:
    served.server.should_exit = True
    served.thread.join(timeout=15)


@dataclass
class Cloud:
    url: str
    public_key: str

    def admin(self, method: str, path: str, **kwargs) -> httpx.Response:
        resp = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60, **kwargs
        )
        resp.raise_for_status()
        return resp

    def publish(self, bundle: Path) -> str:
        from service.common.cloud_admin import publish_bundle

        return str(publish_bundle(bundle, self.url, ADMIN_TOKEN)["version"])

    def enrolment_token(self, max_devices: int = 10) -> str:
        """An operator-issued enrolment token (the cloud refuses anonymous enrolment)."""
        return str(self.admin("POST", "/v1/enrolment-tokens", json={"max_devices": max_devices}).json()["token"])

    def rollout(self, version: str, percent: int) -> dict:
        return self.admin("PUT", "/v1/rollout", json={"version": version, "percent": percent}).json()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("sim-cloud")
    key = Ed25519PrivateKey.generate()
    settings = Settings(
        store_url=f"sqlite:///{tmp / 'cloud.db'}",
        data_dir=tmp / "data",
        admin_token=ADMIN_TOKEN,
        signing_key=private_key_to_pem(key).decode(),
        max_model_bytes=10_000_000,  # the tiny test bundle's model.onnx is above the 1.91 MB budget
        k_min=3,
        dev_mode=True,  # the fleet advances the cloud's clock between simulated days
        enrol_rate_per_source=10_000,  # the whole fleet enrols from 127.0.0.1 at once
    )
    served = serve(create_app(settings))
    try:
        yield Cloud(served.url, public_key_to_b64(key.public_key()))
    finally:
        stop(served)


@pytest.fixture(scope="module")
def variant_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle under another manifest version: same files, a distinct version to roll out."""
    out = tmp_path_factory.mktemp("sim-variant")
    shutil.copytree(tiny_bundle, out, dirs_exist_ok=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = VARIANT_VERSION
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture(scope="module")
def edge_url(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An edge node without a cloud: it keeps serving the tiny bundle."""
    from service.edge.app import create_app as create_edge
    from service.edge.config import EdgeSettings

    settings = EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path_factory.mktemp("sim-edge"))
    served = serve(create_edge(settings))
    try:
        yield served.url
    finally:
        stop(served)
