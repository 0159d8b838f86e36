"""Fault injection between simulated devices and the cloud, at the one seam every request crosses: the httpx
transport.

Network faults (`drop`, `delay`) hit any request with a probability; download faults (`bitflip`, `truncate`)
corrupt the next n bundle files served, so a test or the demo knows exactly how many corrupted bundles the
fleet must reject. `cloud-restart` is scheduled by the fleet, and only when it owns the cloud process.

The same wrapper counts every request by route and lets a caller observe what left the device (tests use it
to prove that no raw text ever does). Decisions come from one seeded `random.Random` under a lock, because the
telemetry outbox sends from worker threads through the synchronous twin of the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
from pydantic import BaseModel, ConfigDict, Field

from simulators.failures import FailureLedger

FAULT_KINDS = ("drop", "delay", "bitflip", "truncate", "cloud-restart")
DEFAULT_DROP_P = 0.02
DEFAULT_DELAY_P = 0.05
DELAY_RANGE_S = (0.02, 0.2)
EXAMPLE_BODY_CHARS = 200

# What devices download: bundle files by content address (and the legacy archive route, which they no longer use).
_BUNDLE_PATH = re.compile(r"^/v1/(blobs/[0-9a-f]{64}|models/[^/]+/bundle)$")
_POLL_PATH = re.compile(r"^/v1/devices/[^/]+/model$")

Observer = Callable[[httpx.Request], None]


class FaultSpec(BaseModel):
    """What `--faults` asked for."""

    model_config = ConfigDict(extra="forbid")

    drop: float = Field(default=0.0, ge=0.0, le=1.0)  # probability a request's connection is dropped
    delay: float = Field(default=0.0, ge=0.0, le=1.0)  # probability a request is delayed by DELAY_RANGE_S
    bitflip: int = Field(default=0, ge=0)  # the next n bundle downloads get one bit flipped
    truncate: int = Field(default=0, ge=0)  # the next n bundle downloads lose their second half
    cloud_restart: int = Field(default=0, ge=0, le=1)


def parse_faults(text: str | None) -> FaultSpec:
    """`drop:0.02,bitflip:1,cloud-restart` -> FaultSpec; a kind without a value takes its default."""
    values: dict[str, float | int] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        kind, _, value = item.partition(":")
        kind = kind.strip().lower()
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if kind in ("drop", "delay"):
            values[kind] = float(value) if value else (DEFAULT_DROP_P if kind == "drop" else DEFAULT_DELAY_P)
        else:
            values[kind.replace("-", "_")] = int(value) if value else 1
    return FaultSpec(**values)


def route_of(request: httpx.Request) -> str:
    """The counter a request falls under (the path's shape, never an id)."""
    path, method = request.url.path, request.method
    if method == "POST" and path == "/v1/devices":
        return "enrol"
    if _POLL_PATH.match(path):
        return "poll"
    if _BUNDLE_PATH.match(path):
        return "download"
    if path == "/v1/telemetry":
        return "telemetry"
    return "other"


class FaultInjector:
    """Decides each fault from a seeded RNG and remembers what it did (thread-safe)."""

    def __init__(self, spec: FaultSpec, seed: int, ledger: FailureLedger | None = None) -> None:
        self.spec = spec
        self.ledger = ledger or FailureLedger()  # every failed request, by cause
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._downloads_left = {"bitflip": spec.bitflip, "truncate": spec.truncate}
        self.injected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()  # by route, requests that reached the wire
        self.responses: Counter[str] = Counter()  # "route status"
        self.corrupted_versions: list[tuple[str, str]] = []  # (kind, bundle path) of each corrupted download

    def network(self, request: httpx.Request) -> tuple[bool, float]:
        """(drop?, delay in seconds) for one request."""
        with self._lock:
            delay = 0.0
            if self.spec.delay and self._rng.random() < self.spec.delay:
                delay = self._rng.uniform(*DELAY_RANGE_S)
                self.injected["delay"] += 1
            drop = bool(self.spec.drop) and self._rng.random() < self.spec.drop
            if drop:
                self.injected["drop"] += 1
            else:
                self.requests[route_of(request)] += 1
        if drop:
            self.ledger.add(route_of(request), "drop", "injected fault: connection dropped")
        return drop, delay

    def download_fault(self, request: httpx.Request) -> str | None:
        if not _BUNDLE_PATH.match(request.url.path):
            return None
        with self._lock:
            for kind in ("bitflip", "truncate"):
                if self._downloads_left[kind] > 0:
                    self._downloads_left[kind] -= 1
                    self.injected[kind] += 1
                    self.corrupted_versions.append((kind, request.url.path))
                    self.ledger.corrupted(kind)
                    return kind
        return None

    def corrupt(self, kind: str, body: bytes) -> bytes:
        with self._lock:
            if kind == "truncate" or not body:
                return body[: len(body) // 2]
            data = bytearray(body)
            data[self._rng.randrange(len(data))] ^= 1 << self._rng.randrange(8)
            return bytes(data)

    def answered(self, request: httpx.Request, response: httpx.Response) -> None:
        """Count the answer; one >= 400 is a failed call (its body read for the message, errors are small)."""
        status = response.status_code
        with self._lock:
            self.responses[f"{route_of(request)} {status}"] += 1
        if status >= 400:
            cause = self.ledger.transport_cause() if status >= 500 else None
            text = response.content[:EXAMPLE_BODY_CHARS].decode("utf-8", "replace")
            self.ledger.add(route_of(request), cause, f"{request.method} {route_of(request)}: HTTP {status} {text}")
        self.ledger.answered(status)

    def failed(self, request: httpx.Request, exc: Exception) -> None:
        """The request raised on the wire: the cloud restart explains it while the cloud is down, else nothing."""
        detail = f"{request.method} {route_of(request)}: {type(exc).__name__}: {exc}"
        self.ledger.add(route_of(request), self.ledger.transport_cause(), detail)


def _dropped(request: httpx.Request) -> httpx.ConnectError:
    return httpx.ConnectError("injected fault: connection dropped", request=request)


def _replaced(response: httpx.Response, body: bytes, request: httpx.Request) -> httpx.Response:
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
    return httpx.Response(response.status_code, headers=headers, content=body, request=request)


class _FaultSteps:
    """What both transports do around the real request; only the I/O (sleep, send, read, close) differs."""

    injector: FaultInjector
    observer: Observer | None

    def _admit(self, request: httpx.Request, drop: bool) -> None:
        """Drop the request (as a connection error) or let the observer see it go out."""
        if drop:
            raise _dropped(request)
        if self.observer is not None:
            self.observer(request)

    @contextlib.contextmanager
    def _recording_failures(self, request: httpx.Request) -> Iterator[None]:
        try:
            yield
        except httpx.TransportError as exc:
            self.injector.failed(request, exc)
            raise

    def _fault_for(self, request: httpx.Request, response: httpx.Response) -> str | None:
        """Record the answer; the corruption to apply to its body, if this download draws one."""
        self.injector.answered(request, response)
        return self.injector.download_fault(request) if response.status_code == 200 else None


class FaultyAsyncTransport(_FaultSteps, httpx.AsyncBaseTransport):
    """Wraps the real transport of the devices' async cloud client."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, injector: FaultInjector, observer: Observer | None = None
    ) -> None:
        self.inner = inner
        self.injector = injector
        self.observer = observer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        drop, delay = self.injector.network(request)
        if delay:
            await asyncio.sleep(delay)
        self._admit(request, drop)
        with self._recording_failures(request):
            response = await self.inner.handle_async_request(request)
            if response.status_code >= 400:
                await response.aread()
        kind = self._fault_for(request, response)
        if kind is None:
            return response
        try:
            body = await response.aread()
        finally:
            await response.aclose()
        return _replaced(response, self.injector.corrupt(kind, body), request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class BoundedAsyncTransport(httpx.AsyncBaseTransport):
    """At most `limit` requests inside `inner` at once; the rest wait on a semaphore, outside the pool.

    httpcore's pool rescans its whole queue of waiting requests against every connection each time a request
    starts or ends, so thousands of devices polling in the same simulated hour made the fleet's CPU grow with
    the square of its size (half of a 500-device run's CPU was that scan). Waiting here costs nothing."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.inner = inner
        self._slots = asyncio.Semaphore(limit)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._slots:
            return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FaultyTransport(_FaultSteps, httpx.BaseTransport):
    """The synchronous twin, for the telemetry outbox (which sends from worker threads)."""

    def __init__(self, inner: httpx.BaseTransport, injector: FaultInjector, observer: Observer | None = None) -> None:
        self.inner = inner
        self.injector = injector
        self.observer = observer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        drop, delay = self.injector.network(request)
        if delay:
            time.sleep(delay)
        self._admit(request, drop)
        with self._recording_failures(request):
            response = self.inner.handle_request(request)
            if response.status_code >= 400:
                response.read()
        kind = self._fault_for(request, response)
        if kind is None:
            return response
        try:
            body = response.read()
        finally:
            response.close()
        return _replaced(response, self.injector.corrupt(kind, body), request)

    def close(self) -> None:
        self.inner.close()
