"""An open-loop load generator: requests at a fixed rate, each latency measured from its *scheduled* send time.

A closed-loop client (N users, each waiting for its answer before the next request) slows down when the server
does, so a stall is recorded once and the requests that would have queued behind it are never sent: coordinated
omission. Here request i is due at t0 + i / rate whatever happened before; its latency runs from that instant,
so time spent queued behind a stall (in the client, waiting for a free connection, or in the server) counts.

The number of outstanding requests is bounded (`max_outstanding`): a request due while that many are in flight
is not sent and is counted as `overloaded`, never skipped silently; errors, timeouts and unexpected statuses
are `failed`. Every scheduled request ends in exactly one of ok, failed, overloaded.

The client is raw asyncio HTTP/1.1 over a few pre-opened keep-alive connections with pre-built request bytes:
httpx spends ~0.3 ms of client CPU per request, which on a 2-core machine caps the generator below the edge's
/healthz rate, so the generator (not the server) would be measured. It runs in its own process, pinned away from
the server where the machine has the cores (`GeneratorProcess`), and reports its own lag behind the schedule:
a run whose generator fell behind is flagged, not reported as the server's capacity.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CONNECTIONS = 16  # keep-alive connections, opened before the clock starts
MAX_OUTSTANDING = 256  # requests in flight or waiting for a connection; beyond this a due request is `overloaded`
TIMEOUT_S = 5.0  # per request, from its scheduled time
GENERATOR_LAG_MS = 5.0  # p99 lag of the generator behind its own schedule above which a run is not the server's
GENERATOR_RATE_SHARE = 0.95  # the generator must dispatch at least this share of the target rate
START_DELAY_S = 0.05  # t0 is this far after the connections are open

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    """One HTTP/1.1 request as bytes, built once and replayed: the client then costs little per request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response with a Content-Length (or none, e.g. a 304); no chunked encoding."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = _CONTENT_LENGTH.search(head)
    return int(head[9:12]), (await reader.readexactly(int(m.group(1))) if m else b"")


@dataclass(frozen=True)
class LoadSpec:
    """One open-loop run: `requests` are replayed in turn (request i is `requests[i % len]`)."""

    port: int
    requests: tuple[bytes, ...]
    rate: float  # requests per second
    duration_s: float
    expect_status: int = 200
    host: str = HOST
    connections: int = CONNECTIONS
    max_outstanding: int = MAX_OUTSTANDING
    timeout_s: float = TIMEOUT_S

    @property
    def scheduled(self) -> int:
        return max(1, round(self.rate * self.duration_s))


@dataclass(frozen=True)
class OpenLoopResult:
    target_rate: float
    scheduled: int
    ok: int
    failed: int  # error, timeout or unexpected status
    overloaded: int  # due while `max_outstanding` were outstanding: not sent
    latencies_ms: tuple[float, ...]  # ok requests, from their scheduled send time
    request_ids: tuple[int, ...]  # which of the spec's requests each latency belongs to (index into `requests`)
    dispatch_s: float  # from t0 until the generator dispatched its last request
    generator_lag_p99_ms: float  # how late the generator itself was in dispatching, whatever the server did
    first_error: str = ""

    @property
    def generator_rate(self) -> float:
        """The rate the generator really dispatched at (ok + failed + overloaded all passed its schedule)."""
        if self.scheduled <= 1:
            return self.target_rate
        return (self.scheduled - 1) / max(self.dispatch_s, 1e-9)

    @property
    def generator_ok(self) -> bool:
        """The generator kept its schedule: the latencies are the server's, not the generator's backlog."""
        rate_ok = self.generator_rate >= GENERATOR_RATE_SHARE * self.target_rate
        return rate_ok and self.generator_lag_p99_ms <= GENERATOR_LAG_MS

    def percentile_ms(self, q: float, ids: set[int] | None = None) -> float:
        """The q-quantile (0-1, nearest rank) of ok latencies, optionally only of the requests `ids`."""
        xs = sorted(x for x, i in zip(self.latencies_ms, self.request_ids, strict=True) if ids is None or i in ids)
        if not xs:
            return math.inf
        return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)


async def run_open_loop(spec: LoadSpec) -> OpenLoopResult:
    """Send `spec.scheduled` requests at `spec.rate`, each due at t0 + i / rate; see the module docstring."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(spec.connections):
        idle.put_nowait(await asyncio.open_connection(spec.host, spec.port))
    n = spec.scheduled
    latencies: list[float] = []
    ids: list[int] = []
    lags: list[float] = []
    counts = {"failed": 0, "overloaded": 0}
    errors: list[str] = []
    outstanding = 0

    async def exchange(k: int) -> None:
        conn = await idle.get()
        try:
            if conn is None:  # a connection broken by an earlier error: open a fresh one
                conn = await asyncio.open_connection(spec.host, spec.port)
            conn[1].write(spec.requests[k])
            status, _ = await read_response(conn[0])
        except BaseException:
            if conn is not None:
                conn[1].close()
            idle.put_nowait(None)
            raise
        idle.put_nowait(conn)
        if status != spec.expect_status:
            raise RuntimeError(f"HTTP {status}, expected {spec.expect_status}")

    async def one(i: int, due: float) -> None:
        nonlocal outstanding
        k = i % len(spec.requests)
        try:
            await asyncio.wait_for(exchange(k), timeout=max(0.001, due + spec.timeout_s - loop.time()))
            latencies.append(1000.0 * (loop.time() - due))
            ids.append(k)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, RuntimeError, TimeoutError) as e:
            counts["failed"] += 1
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            outstanding -= 1

    tasks: list[asyncio.Task[None]] = []
    t0 = loop.time() + START_DELAY_S
    last = t0
    for i in range(n):
        due = t0 + i / spec.rate
        if (delay := due - loop.time()) > 0:
            await asyncio.sleep(delay)
        last = loop.time()
        lags.append(last - due)
        if outstanding >= spec.max_outstanding:
            counts["overloaded"] += 1
            continue
        outstanding += 1
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        if (conn := idle.get_nowait()) is not None:
            conn[1].close()
    lags.sort()
    return OpenLoopResult(
        target_rate=spec.rate,
        scheduled=n,
        ok=len(latencies),
        failed=counts["failed"],
        overloaded=counts["overloaded"],
        latencies_ms=tuple(latencies),
        request_ids=tuple(ids),
        dispatch_s=last - t0,
        generator_lag_p99_ms=1000.0 * lags[min(n - 1, math.ceil(0.99 * n) - 1)],
        first_error=errors[0] if errors else "",
    )


def open_loop(spec: LoadSpec) -> OpenLoopResult:
    return asyncio.run(run_open_loop(spec))


# ------------------------------------------------------------------------------------------------ processes


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict every thread of process `pid` to `cpus` (Linux); threads it starts later inherit it.
    `sched_setaffinity(pid)` alone moves only the main thread, hence the walk over /proc/<pid>/task."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return
    task_dir = Path(f"/proc/{pid}/task")
    for tid in [int(p.name) for p in task_dir.iterdir()] if task_dir.is_dir() else [pid]:
        try:
            os.sched_setaffinity(tid, cpus)
        except (ProcessLookupError, PermissionError):  # a thread that just ended, or not ours
            continue


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, generator CPUs): the first CPU this process may use for the server, the next for the
    generator; (None, None) on a single core, where nothing can be kept apart."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return ({cpus[0]}, {cpus[1]}) if len(cpus) >= 2 else (None, None)


def _pin_self(cpus: set[int] | None) -> None:
    pin(os.getpid(), cpus)


@dataclass
class GeneratorProcess:
    """The generator in a child process of its own (spawned once, reused for every run), optionally pinned to
    `cpus`, so that its event loop never competes with this process or, pinned, with the server's core."""

    cpus: set[int] | None = None
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> GeneratorProcess:
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_pin_self, initargs=(self.cpus,))
        return self

    def run(self, spec: LoadSpec) -> OpenLoopResult:
        if self._pool is None:
            raise RuntimeError("GeneratorProcess is used as a context manager")
        return self._pool.submit(open_loop, spec).result(timeout=spec.duration_s + spec.timeout_s + 60.0)

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


# ------------------------------------------------------------------------------------------------ capacity

P99_LIMIT_MS = 20.0
START_RATE = 100.0
CEILING_RATE = 20_000.0
PRECISION = 0.10  # bisection stops when the failing rate is within 10% of the passing one
TRIES = 2  # a failing rate is run again once: one descheduling by another job on a shared machine is not capacity
MIN_DURATION_S = 2.0
MIN_SAMPLES = 400  # per run: at low rates the run lasts longer, so a p99 rests on >= 4 samples above it


@dataclass(frozen=True)
class Capacity:
    rate: float  # highest rate that passed (0: none did)
    limited_by: str  # "server" | "generator" (could not send a higher rate: a floor) | "ceiling"
    steps: tuple[OpenLoopResult, ...]
    half: OpenLoopResult | None  # a run at rate / 2

    @property
    def at_rate(self) -> OpenLoopResult | None:
        """The passing run at `rate`, for the generator's own figures at capacity."""
        return next((s for s in reversed(self.steps) if s.target_rate == self.rate and passes(s)), None)

    @property
    def failed_above(self) -> OpenLoopResult | None:
        """The failing run at the lowest rate above `rate`: what stopped the search."""
        above = [s for s in self.steps if s.target_rate > self.rate and not passes(s)]
        return min(above, key=lambda s: s.target_rate) if above else None


def why_failed(r: OpenLoopResult, p99_limit_ms: float = P99_LIMIT_MS) -> str:
    """What made a run miss, in a few words: the table's "stopped by" column."""
    parts = [f"p99 {r.p99_ms:,.0f} ms"] if r.p99_ms > p99_limit_ms else []
    parts += [f"{r.overloaded} overloaded"] if r.overloaded else []
    parts += [f"{r.failed} failed"] if r.failed else []
    if r.generator_rate < GENERATOR_RATE_SHARE * r.target_rate:
        parts.append(f"generator sent {r.generator_rate:,.0f}/s")
    if r.generator_lag_p99_ms > GENERATOR_LAG_MS:
        parts.append(f"generator lag {r.generator_lag_p99_ms:.0f} ms")
    return f"{r.target_rate:,.0f}/s: " + ", ".join(parts)


def passes(r: OpenLoopResult, p99_limit_ms: float = P99_LIMIT_MS) -> bool:
    return r.failed == 0 and r.overloaded == 0 and r.p99_ms <= p99_limit_ms and r.generator_ok


def duration_for(rate: float) -> float:
    return max(MIN_DURATION_S, MIN_SAMPLES / rate)


def capacity(
    probe: Callable[[float], OpenLoopResult],
    *,
    start: float = START_RATE,
    ceiling: float = CEILING_RATE,
    precision: float = PRECISION,
    tries: int = TRIES,
    p99_limit_ms: float = P99_LIMIT_MS,
) -> Capacity:
    """The highest rate `probe(rate)` sustains with p99 <= `p99_limit_ms`, no failure, nothing overloaded and
    the generator on schedule: doubling from `start` until a rate fails, then geometric bisection; then one run
    at half that rate. A rate the generator could not dispatch at stops the search as generator-limited; a run
    where it dispatched on time but lagged (> GENERATOR_LAG_MS, e.g. sharing a core with a saturated server)
    fails that rate without being passed off as either side's limit: its latencies include the lag."""
    steps: list[OpenLoopResult] = []
    generator_limited = False

    def ok(rate: float) -> bool:
        nonlocal generator_limited
        for _ in range(tries):
            r = probe(rate)
            steps.append(r)
            if passes(r, p99_limit_ms):
                return True
            if r.generator_rate < GENERATOR_RATE_SHARE * r.target_rate:  # it could not send at this rate
                generator_limited = True
                return False
        return False

    lo, hi, rate = 0.0, math.inf, start
    while rate <= ceiling and not generator_limited:
        if ok(rate):
            lo, rate = rate, rate * 2
        else:
            hi = rate
            break
    rate = hi / 2
    while lo == 0.0 and hi < math.inf and rate >= start / 16 and not generator_limited:  # even `start` failed
        if ok(rate):
            lo = rate
        else:
            hi, rate = rate, rate / 2
    while lo > 0 and hi < math.inf and hi / lo > 1 + precision and not generator_limited:
        mid = math.sqrt(lo * hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    limited_by = "generator" if generator_limited else ("ceiling" if hi == math.inf else "server")
    half = probe(lo / 2) if lo > 0 else None
    return Capacity(lo, limited_by, tuple(steps), half)
