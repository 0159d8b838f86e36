"""Every failed call is counted once, with its cause: injected drop, the cloud restart window, a corrupted
download, or unexplained (with the message that explains it to a person)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.edge.schemas import MAX_REQUEST_CHARS, MAX_TEXT_CHARS
from simulators.failures import MAX_EXAMPLES, MAX_EXAMPLES_PER_CALL, FailureLedger
from simulators.faults import FaultInjector, FaultSpec, FaultyAsyncTransport, FaultyTransport
from simulators.runtime import fit_texts


class Cloud:
    """A mock cloud whose answer the test sets: a status, or a refused connection (the process is down)."""

    def __init__(self) -> None:
        self.down = False
        self.status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(self.status, json={"error": "invalid_request", "message": "text too long"})


def _client(cloud: Cloud, injector: FaultInjector) -> httpx.Client:
    return httpx.Client(transport=FaultyTransport(httpx.MockTransport(cloud), injector), base_url="http://cloud")


def test_an_injected_drop_is_explained_by_the_drop() -> None:
    injector = FaultInjector(FaultSpec(drop=1.0), seed=0)
    with _client(Cloud(), injector) as client, pytest.raises(httpx.ConnectError):
        client.get("/v1/devices/d/model")
    s = injector.ledger.summary()
    assert s.by_call == {"poll": {"drop": 1}} and s.unexplained == 0 and s.explained == 1


def test_an_error_answer_is_unexplained_and_keeps_its_message() -> None:
    cloud = Cloud()
    cloud.status = 422
    injector = FaultInjector(FaultSpec(), seed=0)
    with _client(cloud, injector) as client:
        resp = client.post("/v1/telemetry", json={})
        assert resp.status_code == 422 and resp.json()["message"] == "text too long"  # still readable
    s = injector.ledger.summary()
    assert s.by_call == {"telemetry": {"unexplained": 1}} and s.unexplained == 1
    assert "HTTP 422" in s.unexplained_examples[0] and "text too long" in s.unexplained_examples[0]


def test_the_restart_explains_failures_only_until_the_cloud_answers_again() -> None:
    cloud = Cloud()
    injector = FaultInjector(FaultSpec(), seed=0)
    with _client(cloud, injector) as client:
        injector.ledger.outage_begins()
        cloud.down = True
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                client.get("/v1/devices/d/model")
        cloud.down = False
        assert client.get("/v1/devices/d/model").status_code == 200  # back: the window closes
        cloud.down = True
        with pytest.raises(httpx.ConnectError):
            client.get("/v1/devices/d/model")
    assert injector.ledger.summary().by_call == {"poll": {"cloud-restart": 3, "unexplained": 1}}


def test_a_4xx_during_the_outage_is_not_the_restarts_fault() -> None:
    cloud = Cloud()
    cloud.status = 403
    injector = FaultInjector(FaultSpec(), seed=0)
    injector.ledger.outage_begins()
    with _client(cloud, injector) as client:
        client.post("/v1/devices", json={})
    assert injector.ledger.summary().by_call == {"enrol": {"unexplained": 1}}


def test_each_corrupted_download_explains_one_refusal_only() -> None:
    ledger = FailureLedger()
    ledger.corrupted("bitflip")
    ledger.refused_bundle("sha256 mismatch")
    ledger.refused_bundle("sha256 mismatch")  # nothing left to explain this one
    assert ledger.summary().by_call == {"verify": {"bitflip": 1, "unexplained": 1}}


def test_a_failed_step_counts_once_whether_or_not_a_request_under_it_failed() -> None:
    injector = FaultInjector(FaultSpec(drop=1.0), seed=0)
    ledger = injector.ledger

    async def step() -> list[str]:
        transport = FaultyAsyncTransport(httpx.MockTransport(Cloud()), injector)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            with ledger.scope() as seen, pytest.raises(httpx.ConnectError):
                await client.get("/v1/devices/d/model")
            return seen

    seen = asyncio.run(step())
    ledger.step_failed(seen, "update:poll", "poll failed")  # the drop already counted it
    with ledger.scope() as nothing_failed:
        pass
    ledger.step_failed(nothing_failed, "update:offer", "bad signature")  # no request failed: counted here
    assert ledger.summary().by_call == {"poll": {"drop": 1}, "update:offer": {"unexplained": 1}}


def test_scopes_of_concurrent_tasks_and_worker_threads_are_their_own() -> None:
    ledger = FailureLedger()

    async def device(fail: bool) -> list[str]:
        with ledger.scope() as seen:
            await asyncio.sleep(0)
            if fail:
                await asyncio.to_thread(ledger.add, "telemetry", None, "from a worker thread")
            await asyncio.sleep(0)
        return seen

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(device(True), device(False)))

    assert asyncio.run(both()) == [["unexplained"], []]


def test_the_first_examples_of_each_call_are_kept_and_no_more() -> None:
    ledger = FailureLedger()
    for i in range(2000):  # a flood of one cause ...
        ledger.add("enrol", None, f"HTTP 429 number {i}")
    ledger.add("rank", None, "HTTP 429 from the edge node")  # ... does not hide another
    for i in range(50):
        ledger.add(f"call-{i}", None, "x")
    s = ledger.summary()
    assert s.unexplained == 2051 and len(s.unexplained_examples) == MAX_EXAMPLES
    assert sum(x.startswith("enrol:") for x in s.unexplained_examples) == MAX_EXAMPLES_PER_CALL
    assert "rank: HTTP 429 from the edge node" in s.unexplained_examples


def test_texts_are_cut_to_the_edges_published_limits() -> None:
    long = "x" * (MAX_TEXT_CHARS + 304)  # m296 with its tags: 2,304 characters
    assert [len(t) for t in fit_texts([long, "short"])] == [MAX_TEXT_CHARS, 5]
    many = fit_texts([long] * 80)  # 80 texts at the per-text limit would be over the per-request one
    assert sum(map(len, many)) <= MAX_REQUEST_CHARS and len(many) == 80
    assert fit_texts([]) == []


def test_the_fleet_drops_idle_connections_before_the_servers_do() -> None:
    """Equal keep-alive timeouts race: a request sent as the server closes the connection fails with a bare
    ReadError (2 of 100 edge rank calls in a 1,500-device demo)."""
    import uvicorn

    from simulators.fleet import client_limits

    server_keep_alive = uvicorn.Config(app=None).timeout_keep_alive  # what `eibert cloud` / `eibert edge` run
    assert client_limits().keepalive_expiry < server_keep_alive / 2
    assert client_limits(64).max_connections == 64
