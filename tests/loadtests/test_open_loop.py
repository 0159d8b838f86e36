"""The open-loop generator: it keeps its rate, measures latency from each request's scheduled send time (a
stall shows in p99 where a coordinated-omission client hides it), counts what it could not send, and finds a
capacity by stepping the rate. The servers are tiny in-test asyncio servers, never the real services."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadtests.open_loop import (
    GeneratorProcess,
    LoadSpec,
    OpenLoopResult,
    capacity,
    open_loop,
    pin,
    read_response,
    request,
    split_cpus,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HEALTHZ = (request("GET", "/healthz"),)


@contextmanager
def tiny_server(stall_at: int | None = None, stall_s: float = 0.2, answer: bool = True) -> Iterator[int]:
    """An HTTP/1.1 keep-alive server on its own event loop in a thread; yields its port. `stall_at`: the
    request (0-based, counted across connections) at which the whole server blocks for `stall_s` (like a
    pause of a single-threaded server); `answer=False`: it reads requests and never answers."""
    loop = asyncio.new_event_loop()
    served = 0
    ready = threading.Event()
    port = 0
    stop: asyncio.Future[None] | None = None
    handlers: set[asyncio.Task] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        handlers.add(asyncio.current_task())
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                if stall_at is not None and served == stall_at:
                    time.sleep(stall_s)  # blocks the loop: every connection waits, as in a real stall
                served += 1
                if answer:
                    writer.write(OK)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        nonlocal port, stop
        stop = loop.create_future()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ready.set()
        await stop
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()


def closed_loop_from_send(port: int, rate: float, n: int) -> list[float]:
    """What a coordinated-omission client records: one connection, each request sent when the previous one
    came back (or when due, if later), latency from the actual send; the check below must catch it."""

    async def run() -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop, out = asyncio.get_running_loop(), []
        t0 = loop.time()
        for i in range(n):
            if (delay := t0 + i / rate - loop.time()) > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            writer.write(HEALTHZ[0])
            await read_response(reader)
            out.append(1000.0 * (loop.time() - sent))
        writer.close()
        return out

    return asyncio.run(run())


def p99(xs: list[float]) -> float:
    return sorted(xs)[int(0.99 * len(xs)) - 1]


def test_it_sends_every_scheduled_request_at_the_target_rate() -> None:
    with tiny_server() as port:
        r = open_loop(LoadSpec(port, HEALTHZ, rate=400, duration_s=1.0, connections=4))
    assert r.scheduled == 400 and (r.ok, r.failed, r.overloaded) == (400, 0, 0)
    assert r.generator_rate > 0.8 * 400 and len(r.latencies_ms) == 400
    assert r.p50_ms < 50  # generous: the machine is shared


def test_a_stall_shows_in_p99_measured_from_the_schedule_but_not_from_the_send() -> None:
    rate, n = 200, 400  # a 200 ms stall holds up ~40 requests due meanwhile: 10% of the run
    with tiny_server(stall_at=100) as port:
        r = open_loop(LoadSpec(port, HEALTHZ, rate=rate, duration_s=n / rate, connections=4))
    with tiny_server(stall_at=100) as port:
        naive = closed_loop_from_send(port, rate, n)
    assert r.ok == n and r.p99_ms >= 100  # the requests queued behind the stall are counted
    assert p99(naive) < 100  # the coordinated-omission client saw one slow request out of 400: p99 hides it
    assert max(naive) >= 150  # ...though it did see the stall itself


def test_requests_beyond_the_outstanding_bound_are_counted_as_overload() -> None:
    with tiny_server(answer=False) as port:
        spec = LoadSpec(port, HEALTHZ, rate=200, duration_s=0.5, connections=2, max_outstanding=5, timeout_s=0.3)
        r = open_loop(spec)
    assert r.scheduled == 100 and r.ok == 0
    assert r.failed >= 5 and r.overloaded > 0  # the first 5 time out; most due meanwhile could not be sent
    assert r.ok + r.failed + r.overloaded == r.scheduled  # nothing skipped silently
    assert "TimeoutError" in r.first_error


def test_an_unexpected_status_is_a_failure() -> None:
    with tiny_server() as port:
        r = open_loop(LoadSpec(port, HEALTHZ, rate=100, duration_s=0.2, expect_status=304, connections=2))
    assert (r.ok, r.failed) == (0, 20) and "HTTP 200" in r.first_error


def test_the_generator_runs_in_its_own_process() -> None:
    with tiny_server() as port, GeneratorProcess() as gen:
        r = gen.run(LoadSpec(port, HEALTHZ, rate=200, duration_s=0.5, connections=2))
    assert (r.scheduled, r.ok) == (100, 100)


def fake(rate: float, limit: float, lag_ms: float = 0.1, sent_share: float = 1.0) -> OpenLoopResult:
    """A run that meets the 20 ms p99 below `limit` req/s and misses it above; the generator dispatched at
    `sent_share` of the target rate, `lag_ms` late at p99."""
    lat = 2.0 if rate <= limit else 80.0
    n = 200
    return OpenLoopResult(rate, n, n, 0, 0, (lat,) * n, (0,) * n, (n - 1) / (rate * sent_share), lag_ms)


def recording(limit: float, seen: list[float]) -> Callable[[float], OpenLoopResult]:
    def probe(rate: float) -> OpenLoopResult:
        seen.append(rate)
        return fake(rate, limit=limit)

    return probe


def test_capacity_doubles_then_bisects_and_measures_half_that_rate() -> None:
    seen: list[float] = []
    cap = capacity(recording(1000, seen), start=100, precision=0.05, tries=1)
    assert cap.limited_by == "server" and 1000 / 1.05 <= cap.rate <= 1000
    assert seen[:5] == [100, 200, 400, 800, 1600] and seen[-1] == cap.rate / 2
    assert cap.half is not None and cap.half.target_rate == cap.rate / 2 and cap.at_rate is not None


def test_capacity_steps_down_when_the_first_rate_fails_and_retries_a_failing_rate() -> None:
    calls: list[float] = []
    cap = capacity(recording(30, calls), start=100, precision=0.1, tries=2)
    assert cap.limited_by == "server" and 30 / 1.1 <= cap.rate <= 30
    assert calls[:2] == [100, 100]  # a failing rate is run twice before it counts as failed


def test_a_generator_that_cannot_send_the_rate_is_not_reported_as_the_servers_capacity() -> None:
    def probe(rate: float) -> OpenLoopResult:
        return fake(rate, limit=1000, sent_share=1.0 if rate < 400 else 0.5)

    cap = capacity(probe, start=100, tries=1)
    assert cap.limited_by == "generator" and cap.rate == 200


def test_a_lagging_but_punctual_generator_fails_the_rate_and_the_search_goes_on() -> None:
    def probe(rate: float) -> OpenLoopResult:
        return fake(rate, limit=10_000, lag_ms=0.1 if rate < 700 else 30.0)  # latencies fine, lag not

    cap = capacity(probe, start=100, tries=1)
    assert cap.limited_by == "server" and 700 / 1.1 <= cap.rate < 700


def test_pin_moves_every_thread_of_a_process() -> None:
    before = os.sched_getaffinity(0)
    server, generator = split_cpus()
    if server is None or generator is None:
        pytest.skip("one CPU: nothing to keep apart")
    assert server.isdisjoint(generator) and server | generator <= before
    worker = threading.Thread(target=time.sleep, args=(0.5,))
    worker.start()
    try:
        pin(os.getpid(), generator)
        tids = [int(p.name) for p in Path(f"/proc/{os.getpid()}/task").iterdir()]
        assert all(os.sched_getaffinity(t) == generator for t in tids) and len(tids) >= 2
    finally:
        pin(os.getpid(), before)
        worker.join()
