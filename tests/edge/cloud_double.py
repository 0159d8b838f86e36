"""A TEST DOUBLE of the cloud's device API, not the cloud (that is service/cloud, issue 5).

It speaks the contract of `service/common/device_api.py` and `service/common/offer.py` over HTTP (FastAPI,
reached through httpx's ASGI transport): enrolment, the signed offer with ETag / If-None-Match, and files by
content address (`/v1/blobs/{sha256}`). Tests prepare what it offers and can make it misbehave in every way a
network or a compromised server could: flipped, missing or endless bytes, a signature by another key, a
payload altered after signing, an expired or lower-generation offer, a replay of recorded bytes, a 304 forever.
It records every request so tests can inspect what the device sent.

httpx's ASGI transport buffers a whole response before returning it, so an endless body cannot go through it;
`blob_streams` are therefore served by a wrapping transport that hands the device a lazy stream, as a socket
would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from service.common.contract import BUNDLE_FILES
from service.common.device_api import BLOBS_PREFIX, DeviceEnrolRequest
from service.common.offer import OfferPayload, sign_offer
from service.common.signing import public_key_to_b64

BASE_URL = "http://cloud.test"
TTL_S = 3600
SIGN_WINDOW_S = 60


@dataclass
class Published:
    version: str  # the manifest's version
    manifest: dict[str, Any]
    files: dict[str, bytes]

    @property
    def release_id(self) -> str:
        return f"{self.manifest['name']}-{self.manifest['version']}"  # as the real cloud names it


@dataclass
class CloudDouble:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tokens: dict[str, str] = field(default_factory=dict)
    published: dict[str, Published] = field(default_factory=dict)
    offered: str | None = None  # version GET /v1/devices/{id}/model offers; None -> 404
    generation: int = 0  # bumped by every offer(), as every rollout transition bumps the real one
    now: Callable[[], float] = field(default=time.time)  # the double's clock: tests move it
    # Misbehaviour knobs (all off by default, cleared by offer()):
    served_files: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes served instead
    blob_streams: dict[str, Callable[[], AsyncIterator[bytes]]] = field(default_factory=dict)  # name -> stream
    payload_overrides: dict[str, Any] = field(default_factory=dict)  # payload fields set before signing
    tamper: Callable[[bytes], bytes] | None = None  # applied to the signed payload bytes after signing
    signing_key: Ed25519PrivateKey | None = None  # sign with this key instead of `key`
    poll_status: int | None = None  # answer polls with this status instead
    replay: bytes | None = None  # answer polls with exactly these (recorded) bytes
    freeze: bool = False  # answer every poll that sends an If-None-Match with 304, forever
    offer_headers: dict[str, str] = field(default_factory=dict)  # added to offer responses
    blob_headers: dict[str, str] = field(default_factory=dict)  # added to blob responses
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    streamed: dict[str, int] = field(default_factory=dict)  # bytes an endless stream actually yielded
    served: list[bytes] = field(default_factory=list)  # every offer body a poll answered, in order

    @property
    def public_key_b64(self) -> str:
        return public_key_to_b64(self.key.public_key())

    def publish(self, bundle_dir: Path) -> Published:
        manifest = json.loads((Path(bundle_dir) / "manifest.json").read_text())
        files = {name: (Path(bundle_dir) / name).read_bytes() for name in BUNDLE_FILES}
        pub = Published(manifest["version"], manifest, files)
        self.published[pub.version] = pub
        return pub

    def offer(self, version: str, *, generation: int | None = None) -> None:
        """Offer `version` at the next (or the given) generation and clear every misbehaviour knob."""
        self.offered = version
        self.generation = self.generation + 1 if generation is None else generation
        self.served_files = {}
        self.blob_streams = {}
        self.payload_overrides = {}
        self.tamper = None
        self.signing_key = None
        self.poll_status = None
        self.replay = None
        self.freeze = False
        self.offer_headers = {}
        self.blob_headers = {}

    def payload(self) -> OfferPayload:
        pub = self.published[self.offered]
        # Like the real cloud, sign per window (not per second), so that two polls a second apart get the same
        # bytes and the second one a 304; tests that need a new `issued` move `now` past a window.
        issued = int(self.now()) // SIGN_WINDOW_S * SIGN_WINDOW_S
        fields: dict[str, Any] = {
            "version": pub.release_id,
            "generation": self.generation,
            "issued": issued,
            "expires": issued + TTL_S,
            "manifest": pub.manifest,
        }
        fields.update(self.payload_overrides)
        return OfferPayload.model_validate(fields)

    def signed_body(self) -> bytes:
        """The exact bytes a poll answers now (what an eavesdropper could record and replay later)."""
        if self.replay is not None:
            return self.replay
        body = sign_offer(self.payload(), self.signing_key or self.key)
        if self.tamper is not None:
            envelope = json.loads(body)
            signed = base64.b64decode(envelope["payload"])
            envelope["payload"] = base64.b64encode(self.tamper(signed)).decode()
            body = json.dumps(envelope).encode()
        return body

    def etag(self) -> str:
        """The ETag of the last offer a poll answered with a 200."""
        return '"' + hashlib.sha256(self.served[-1]).hexdigest() + '"'

    def polls(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[0] == "GET" and r[1].endswith("/model")]

    def downloads(self) -> list[tuple[str, str, dict[str, str], bytes]]:
        return [r for r in self.requests if r[1].startswith(BLOBS_PREFIX)]

    def _file_by_sha(self, sha: str) -> tuple[str, bytes] | None:
        for pub in self.published.values():
            for name, data in pub.files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    return name, data
        return None

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
            if self.poll_status == 304:  # "not modified", whatever the device asked
                return Response(status_code=304)
            if self.poll_status is not None:
                return JSONResponse(status_code=self.poll_status, content={"error": "x", "message": "injected"})
            if self.freeze and if_none_match:
                return Response(status_code=304, headers={"ETag": if_none_match})
            if self.offered is None:
                return JSONResponse(status_code=404, content={"error": "not_found", "message": "no model"})
            body = self.signed_body()
            etag = '"' + hashlib.sha256(body).hexdigest() + '"'
            if if_none_match == etag:
                return Response(status_code=304, headers={"ETag": etag})
            self.served.append(body)
            return Response(content=body, media_type="application/json", headers={"ETag": etag, **self.offer_headers})

        @app.get(BLOBS_PREFIX + "/{sha256}")
        async def blob(sha256: str) -> Response:
            found = self._file_by_sha(sha256)
            if found is None:
                return JSONResponse(status_code=404, content={"error": "not_found", "message": "no blob"})
            name, data = found
            return Response(
                content=self.served_files.get(name, data),
                media_type="application/octet-stream",
                headers=self.blob_headers,
            )

        return app

    def client(self) -> httpx.AsyncClient:
        inner = httpx.ASGITransport(app=self.build_app())
        return httpx.AsyncClient(transport=_StreamingTransport(inner, self), base_url=BASE_URL)


class _StreamingTransport(httpx.AsyncBaseTransport):
    """Serves `blob_streams` lazily (the ASGI transport would buffer them), everything else via the app."""

    def __init__(self, inner: httpx.AsyncBaseTransport, cloud: CloudDouble) -> None:
        self.inner = inner
        self.cloud = cloud

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith(BLOBS_PREFIX + "/") and self.cloud.blob_streams:
            found = self.cloud._file_by_sha(path.rsplit("/", 1)[1])
            if found is not None and found[0] in self.cloud.blob_streams:
                self.cloud.requests.append((request.method, path, dict(request.headers), b""))
                return httpx.Response(200, content=self._counted(found[0]), request=request)
        return await self.inner.handle_async_request(request)

    async def _counted(self, name: str) -> AsyncIterator[bytes]:
        self.cloud.streamed[name] = 0
        async for chunk in self.cloud.blob_streams[name]():
            self.cloud.streamed[name] += len(chunk)
            yield chunk


def flip_byte(data: bytes, at: int | None = None) -> bytes:
    b = bytearray(data)
    b[len(b) // 2 if at is None else at] ^= 0x01
    return bytes(b)
