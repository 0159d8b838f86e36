"""Fault injection at the transport: parsing `--faults`, and what each fault does to a request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from simulators.faults import (
    BoundedAsyncTransport,
    FaultInjector,
    FaultSpec,
    FaultyAsyncTransport,
    FaultyTransport,
    parse_faults,
    route_of,
)

ARCHIVE = bytes(range(256)) * 64


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/bundle"):
        return httpx.Response(200, content=ARCHIVE, headers={"content-type": "application/gzip"})
    return httpx.Response(200, json={"ok": True})


def test_parse_faults_takes_defaults_and_values() -> None:
    spec = parse_faults("drop, delay:0.5, bitflip:2, truncate, cloud-restart")
    assert spec == FaultSpec(drop=0.02, delay=0.5, bitflip=2, truncate=1, cloud_restart=1)
    assert parse_faults("") == FaultSpec()
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("meteor")


def test_routes_are_counted_by_shape_not_id() -> None:
    def req(method: str, path: str) -> httpx.Request:
        return httpx.Request(method, "http://cloud" + path)

    assert route_of(req("POST", "/v1/devices")) == "enrol"
    assert route_of(req("GET", "/v1/devices/sim-1/model")) == "poll"
    assert route_of(req("GET", "/v1/models/eibert-0.1.0+rollout/bundle")) == "download"
    assert route_of(req("GET", "/v1/blobs/" + "ab" * 32)) == "download"
    assert route_of(req("GET", "/v1/blobs/not-a-digest")) == "other"
    assert route_of(req("POST", "/v1/telemetry")) == "telemetry"


def test_bitflip_then_truncate_corrupt_exactly_the_next_downloads() -> None:
    injector = FaultInjector(FaultSpec(bitflip=1, truncate=1), seed=0)

    async def fetch_three() -> list[bytes]:
        transport = FaultyAsyncTransport(httpx.MockTransport(_handler), injector)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            assert (await client.get("/v1/devices/d/model")).json() == {"ok": True}  # not a download: untouched
            return [(await client.get("/v1/models/v/bundle")).content for _ in range(3)]

    flipped, truncated, clean = asyncio.run(fetch_three())
    diff = [a ^ b for a, b in zip(flipped, ARCHIVE, strict=True) if a != b]
    assert len(diff) == 1 and bin(diff[0]).count("1") == 1  # exactly one bit
    assert truncated == ARCHIVE[: len(ARCHIVE) // 2]
    assert clean == ARCHIVE
    assert injector.injected == {"bitflip": 1, "truncate": 1}
    assert injector.requests == {"poll": 1, "download": 3}


def test_a_dropped_connection_is_a_connect_error_and_never_reaches_the_wire() -> None:
    injector = FaultInjector(FaultSpec(drop=1.0), seed=0)
    seen: list[httpx.Request] = []
    transport = FaultyTransport(httpx.MockTransport(_handler), injector, seen.append)
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError, match="injected"):
        client.post("http://cloud/v1/telemetry", json={"reports": []})
    assert injector.injected == {"drop": 1} and not seen and not injector.requests


def test_the_bounded_transport_keeps_at_most_limit_requests_in_the_pool() -> None:
    """Thousands of devices polling in one simulated hour wait on a semaphore, not in httpcore's queue (which
    it rescans against every connection on each request: the fleet's CPU grew with its size squared)."""
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return httpx.Response(200, json={"ok": True})

    async def main() -> list[int]:
        transport = BoundedAsyncTransport(httpx.MockTransport(handler), limit=3)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            return [r.status_code for r in await asyncio.gather(*(client.get("/v1/x") for _ in range(50)))]

    assert asyncio.run(main()) == [200] * 50
    assert peak == 3
    with pytest.raises(ValueError):
        BoundedAsyncTransport(httpx.MockTransport(handler), limit=0)
