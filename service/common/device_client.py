"""One reader for every answer a device reads from the cloud: identity-encoded and capped, never buffered whole.

Devices (the edge node's updater and its telemetry, the simulator's devices) reach a cloud over a network they
do not control; an impostor cloud or a man in the middle can answer anything. httpx, asked for a body, reads it
whole and inflates a gzip/deflate/br/zstd body chunk by chunk as it arrives (261 KB of gzip became 256 MiB in
the edge's memory). So every call here asks for `Accept-Encoding: identity`, refuses an answer that is encoded
anyway (unread: httpx decodes only the encoding a response names, so only identity bytes are ever read),
refuses a declared `Content-Length` over the cap, and streams the body, stopping as soon as it passes the cap:
an endless body costs at most one chunk more than the cap.

Each call names its cap, because honest sizes differ by orders of magnitude (an enrolment answer is 300 bytes,
a signed offer 15 KB, a telemetry acknowledgement up to ~75 KB); an error status is read within
ERROR_MAX_BYTES whatever the call's cap, since it is only ever quoted in part. `arequest` (async) and `request`
(blocking, for the telemetry outbox's worker thread) read a whole capped answer; `astream` hands a caller that
hashes as it reads (blob downloads, capped at their signed length) an identity-checked stream.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from service.common.device_api import DeviceEnrolRequest
from service.common.errors import EibertError

__all__ = [
    "CHUNK_BYTES",
    "ENROL_MAX_BYTES",
    "ERROR_MAX_BYTES",
    "IDENTITY",
    "LISTING_MAX_BYTES",
    "TELEMETRY_ACK_MAX_BYTES",
    "DeviceResponse",
    "ResponseRefused",
    "arequest",
    "astream",
    "enrol",
    "request",
]

IDENTITY = {"Accept-Encoding": "identity"}
CHUNK_BYTES = 1 << 16
ENROL_MAX_BYTES = 16 * 1024  # {"device_id": <= 128 characters, "token": ...}: under 300 bytes
TELEMETRY_ACK_MAX_BYTES = 1024 * 1024  # <= 500 results of an id, a status and a reason: ~75 KB
LISTING_MAX_BYTES = 8 * 1024 * 1024  # GET /v1/models (the simulator's version names): <= 100 manifests
ERROR_MAX_BYTES = 4096  # an error body is only quoted, in part, in a log line or a status message


class ResponseRefused(EibertError):
    """The cloud's answer is encoded although identity was asked for, or longer than its cap: left unread."""


@dataclass(frozen=True, slots=True)
class DeviceResponse:
    """A cloud answer read whole within its cap."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def _refuse_encoded(resp: httpx.Response) -> None:
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ResponseRefused(f"the cloud's answer is {encoding}-encoded; a device accepts identity only")


class _CappedBody:
    """Chunks collected until their total passes `cap`, which raises ResponseRefused at once."""

    def __init__(self, resp: httpx.Response, cap: int) -> None:
        _refuse_encoded(resp)
        self.cap = cap if 200 <= resp.status_code < 300 else min(cap, ERROR_MAX_BYTES)
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.cap:
            raise ResponseRefused(f"the cloud's answer declares {declared} bytes, over the cap of {self.cap:,}")
        self.resp = resp
        self.size = 0
        self.chunks: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise ResponseRefused(f"the cloud's answer is longer than {self.cap:,} bytes; the rest was not read")
        self.chunks.append(chunk)

    def response(self) -> DeviceResponse:
        return DeviceResponse(self.resp.status_code, self.resp.headers, b"".join(self.chunks))


def _identity(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "headers": {**(kwargs.get("headers") or {}), **IDENTITY}}


async def arequest(client: httpx.AsyncClient, method: str, url: str, *, cap: int, **kwargs: Any) -> DeviceResponse:
    """One call (`kwargs` as httpx takes them: headers, json, params), its answer read within `cap` bytes.
    httpx's own transport errors pass through; an encoded or oversized answer is ResponseRefused."""
    async with client.stream(method, url, **_identity(kwargs)) as resp:
        body = _CappedBody(resp, cap)
        async for chunk in resp.aiter_bytes(CHUNK_BYTES):
            body.add(chunk)
        return body.response()


def request(client: httpx.Client, method: str, url: str, *, cap: int, **kwargs: Any) -> DeviceResponse:
    """`arequest` for a blocking client (the telemetry outbox runs in a worker thread)."""
    with client.stream(method, url, **_identity(kwargs)) as resp:
        body = _CappedBody(resp, cap)
        for chunk in resp.iter_bytes(CHUNK_BYTES):
            body.add(chunk)
        return body.response()


@asynccontextmanager
async def astream(
    client: httpx.AsyncClient, method: str, url: str, *, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.Response]:
    """A streamed answer for a caller that counts and hashes the bytes itself (a file bounded by its signed
    length): identity asked for, and a successful answer in any other encoding refused before it is read."""
    async with client.stream(method, url, **_identity({"headers": headers})) as resp:
        if 200 <= resp.status_code < 300:
            _refuse_encoded(resp)
        yield resp


async def enrol(client: httpx.AsyncClient, device_id: str, enrolment_token: str | None) -> DeviceResponse:
    """POST /v1/devices with the operator-issued enrolment token; the answer capped at ENROL_MAX_BYTES."""
    headers = {} if enrolment_token is None else {"Authorization": f"Bearer {enrolment_token}"}
    body = DeviceEnrolRequest(device_id=device_id).model_dump()
    return await arequest(client, "POST", "/v1/devices", cap=ENROL_MAX_BYTES, headers=headers, json=body)
