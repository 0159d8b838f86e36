"""A TEST DOUBLE of the cloud's device API, not the cloud (that is service/cloud, issue 5).

It speaks the contract of `service/common/device_api.py` over real HTTP (FastAPI, reached through httpx's ASGI
transport): enrolment, the signed model offer with ETag / If-None-Match, and bundle archives. Tests prepare
what it offers and can make it misbehave in every way a network or a compromised server could: flipped or
missing bytes, a wrong announced hash or size, a signature by another key, a manifest that does not match
the archive, a hostile archive. It records every request so tests can inspect what the device sent.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from service.common.archive import pack_bundle
from service.common.device_api import DeviceEnrolRequest, DeviceModelResponse
from service.common.signing import public_key_to_b64, sign_manifest

BASE_URL = "http://cloud.test"


@dataclass
class Published:
    version: str
    manifest: dict[str, Any]
    archive: bytes


@dataclass
class CloudDouble:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tokens: dict[str, str] = field(default_factory=dict)
    published: dict[str, Published] = field(default_factory=dict)
    offered: str | None = None  # version GET /v1/devices/{id}/model offers; None -> 404
    # Misbehaviour knobs (all off by default):
    served_archive: bytes | None = None  # bytes GET .../bundle returns instead of the real archive
    offer_overrides: dict[str, Any] = field(default_factory=dict)  # fields replaced in the offer JSON
    signing_key: Ed25519PrivateKey | None = None  # sign with this key instead of `key`
    poll_status: int | None = None  # answer polls with this status instead
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def public_key_b64(self) -> str:
        return public_key_to_b64(self.key.public_key())

    def publish(self, bundle_dir: Path, archive: bytes | None = None) -> Published:
        manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
        pub = Published(manifest["version"], manifest, archive if archive is not None else pack_bundle(bundle_dir))
        self.published[pub.version] = pub
        return pub

    def offer(self, version: str) -> None:
        """Offer `version` and clear every misbehaviour knob."""
        self.offered = version
        self.served_archive = None
        self.offer_overrides = {}
        self.signing_key = None
        self.poll_status = None

    def offer_json(self) -> dict[str, Any]:
        pub = self.published[self.offered]
        manifest = self.offer_overrides.get("manifest", pub.manifest)
        release_id = f"{pub.manifest['name']}-{pub.manifest['version']}"  # as the real cloud names it
        body = DeviceModelResponse(
            version=release_id,
            manifest=manifest,
            signature=sign_manifest(pub.manifest, self.signing_key or self.key),
            bundle_url=f"/v1/models/{release_id}/bundle",
            bundle_sha256=hashlib.sha256(pub.archive).hexdigest(),
            bundle_bytes=len(pub.archive),
        ).model_dump()
        body.update({k: v for k, v in self.offer_overrides.items() if k != "manifest"})
        return body

    def etag(self) -> str:
        return '"' + hashlib.sha256(json.dumps(self.offer_json(), sort_keys=True).encode()).hexdigest()[:32] + '"'

    def polls(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == "GET" and r[1].endswith("/model")]

    def downloads(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[1].endswith("/bundle")]

    def build_app(self) -> FastAPI:
        app = FastAPI(title="cloud device API test double")

        @app.middleware("http")
        async def record(request: Request, call_next):
            body = await request.body()
            self.requests.append((request.method, request.url.path, dict(request.headers), body))
            return await call_next(request)

        @app.post("/v1/devices", status_code=201)
        async def enrol(req: DeviceEnrolRequest) -> Response:
            if req.device_id in self.tokens:
                return JSONResponse(status_code=409, content={"error": "conflict", "message": "already enrolled"})
            self.tokens[req.device_id] = secrets.token_urlsafe(16)
            return JSONResponse(
                status_code=201, content={"device_id": req.device_id, "token": self.tokens[req.device_id]}
            )

        @app.get("/v1/devices/{device_id}/model")
        async def model(
            device_id: str,
            authorization: str | None = Header(default=None),
            if_none_match: str | None = Header(default=None),
        ) -> Response:
            if authorization != f"Bearer {self.tokens.get(device_id)}":
                return JSONResponse(status_code=401, content={"error": "unauthorized", "message": "bad token"})
            if self.poll_status is not None:
                return JSONResponse(status_code=self.poll_status, content={"error": "x", "message": "injected"})
            if self.offered is None:
                return JSONResponse(status_code=404, content={"error": "not_found", "message": "no model"})
            etag = self.etag()
            if if_none_match == etag:
                return Response(status_code=304, headers={"ETag": etag})
            return JSONResponse(content=self.offer_json(), headers={"ETag": etag})

        @app.get("/v1/models/{version}/bundle")
        async def bundle(version: str) -> Response:
            pub = next(p for p in self.published.values() if f"{p.manifest['name']}-{p.manifest['version']}" == version)
            data = self.served_archive if self.served_archive is not None else pub.archive
            return Response(content=data, media_type="application/gzip")

        return app

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.build_app()), base_url=BASE_URL)


def flip_byte(data: bytes, at: int | None = None) -> bytes:
    b = bytearray(data)
    b[len(b) // 2 if at is None else at] ^= 0x01
    return bytes(b)


def repack(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A tar.gz of the given members (plus raw TarInfo entries such as links): for hostile-archive tests."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()
