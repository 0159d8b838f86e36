"""`eibert bench` serving section: capacity and tail under an open-loop load.

For each endpoint, the highest request rate the server sustains with p99 <= 20 ms, no failure and nothing
overloaded (`loadtests.open_loop.capacity`: doubling, then bisection), as a share of GET /healthz's highest such
rate on the same server in the same run, and p50/p99 at half that rate. Latency runs from each request's
scheduled send time, so a stall counts for every request queued behind it (no coordinated omission).

- Edge (`python -m service.edge`, cache off so every encode runs the model): /healthz, /v1/encode with 1 and
  with 4 short texts; micro-batching off (the default) and on, each on its own server, in the same run.
  Batching earns its default only if it raises the encode capacity by >= 20%.
- The `make load` edge mix, open loop at the rate those locust users offered (encode 1-4 texts x 3, rank 50 x
  100 x 1, cache on: the default server): /v1/encode p50 and p99 (target p99 <= 5x p50).
- Cloud (Redis, durable, as in the cloud section): /healthz and the 304 path (a device's model poll with its
  ETag in If-None-Match).

The generator runs in a child process; with two or more CPUs and a quiet machine the server (and its Redis) is
pinned to one CPU and the generator to another, so the two never take turns on one core. A run in which the
generator itself fell behind its schedule is not counted as the server's capacity (the table says "generator").
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadtests.bench_cloud import cloud_stack, not_modified_requests
from loadtests.edge_workloads import bench_texts, edge_server, rank_body
from loadtests.open_loop import (
    HOST,
    P99_LIMIT_MS,
    Capacity,
    GeneratorProcess,
    LoadSpec,
    OpenLoopResult,
    capacity,
    duration_for,
    pin,
    request,
    split_cpus,
    why_failed,
)
from model_store.data.paths import repo_relative
from service.devstack.bench_file import machine_line
from service.devstack.processes import ServerProcess, free_port, http_ok

SHORT_CHARS = 48  # "short texts": item texts up to this many characters
DISTINCT = 400  # distinct pre-built requests per endpoint, replayed in turn
MIX_RATE = 52.0  # requests/s: what `make load`'s 8 edge users offered
MIX_SECONDS = 15.0
ENCODE_SHARE_TARGET = 0.5
BATCHING_GAIN = 1.2
NEAR_CEILING = 0.8  # a baseline at this share of the generator's no-op ceiling may be the generator's limit
JSON = {"Content-Type": "application/json"}
# Pin server and generator to a CPU each only while the machine has a spare core's worth of idle time: under
# other jobs' load a pinned process waits for its one CPU (measured at load average 5-7 on 2 CPUs: generator lag
# p99 19-41 ms at 100 req/s pinned, 4-30 ms left to the scheduler), which is worse than sharing both.
PIN_BELOW_SPARE = 0.5


# The generator's ceiling: a server that answers every request with a fixed 200 and does nothing else.
_NOOP_SERVER = """
import asyncio, sys
OK = b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\nok"
async def handle(reader, writer):
    try:
        while await reader.readuntil(b"\\r\\n\\r\\n"):
            writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


def noop_server() -> ServerProcess:
    port = free_port()
    url = f"http://{HOST}:{port}"
    argv = [sys.executable, "-c", _NOOP_SERVER, str(port)]
    return ServerProcess("noop", argv, probe=http_ok(url + "/"), url=url, port=port)


def _post(path: str, body: dict) -> bytes:
    return request("POST", path, JSON, json.dumps(body).encode())


def _capacity(gen: GeneratorProcess, port: int, reqs: Sequence[bytes], expect: int = 200) -> Capacity:
    def probe(rate: float) -> OpenLoopResult:
        return gen.run(LoadSpec(port, tuple(reqs), rate, duration_for(rate), expect_status=expect))

    gen.run(LoadSpec(port, tuple(reqs), 100.0, 1.0, expect_status=expect))  # warm-up: connections, caches, code
    return capacity(probe)


def _mix_requests(texts: list[str]) -> tuple[list[bytes], set[int]]:
    """The `make load` edge mix in a fixed cycle (encode, encode, encode, rank): requests and the encode ids."""
    reqs: list[bytes] = []
    encodes: set[int] = set()
    for i in range(DISTINCT):
        if i % 4 == 3:
            reqs.append(_post("/v1/rank", rank_body(texts[(i * 37) % 1000 :][:150])))
        else:
            encodes.add(len(reqs))
            reqs.append(_post("/v1/encode", {"texts": texts[i : i + 1 + i % 4]}))
    return reqs, encodes


def bench_serving(bundle_dir: Path, command: str) -> str:
    """Run every capacity figure against `bundle_dir` and the cloud; returns the BENCHMARKS.md section."""
    load_before = os.getloadavg()
    server_cpus, gen_cpus = split_cpus() if load_before[0] < (os.cpu_count() or 1) - PIN_BELOW_SPARE else (None, None)
    texts = bench_texts()
    short = [t for t in texts if len(t) <= SHORT_CHARS][: 4 * DISTINCT]
    workloads = {
        "GET /healthz": [request("GET", "/healthz")],
        "POST /v1/encode, 1 short text": [_post("/v1/encode", {"texts": [t]}) for t in short[:DISTINCT]],
        "POST /v1/encode, 4 short texts": [
            _post("/v1/encode", {"texts": short[i : i + 4]}) for i in range(0, 4 * DISTINCT, 4)
        ],
    }
    mix_reqs, mix_encodes = _mix_requests(texts)
    edge: dict[str, dict[str, Capacity]] = {}
    cloud: dict[str, Capacity] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, GeneratorProcess(gen_cpus) as gen:
        tmp_path = Path(tmp)
        for label, flag in (("off", "--no-batching"), ("on", "--batching")):
            with edge_server(bundle_dir, tmp_path / label, "--cache-size", "0", flag) as srv:
                pin(srv.pid, server_cpus)
                edge[label] = {name: _capacity(gen, srv.port, reqs) for name, reqs in workloads.items()}
        with edge_server(bundle_dir, tmp_path / "mix") as srv:
            pin(srv.pid, server_cpus)
            gen.run(LoadSpec(srv.port, tuple(mix_reqs), MIX_RATE, len(mix_reqs) / MIX_RATE))  # warm cache
            mix = gen.run(LoadSpec(srv.port, tuple(mix_reqs), MIX_RATE, MIX_SECONDS))
        with cloud_stack(tmp_path / "cloud") as (srv, store, _):
            pin(srv.pid, server_cpus)
            pin(store.pid, server_cpus)
            cloud["GET /healthz"] = _capacity(gen, srv.port, workloads["GET /healthz"])
            polls = not_modified_requests(srv.port, prefix="serving")
            cloud["GET /v1/devices/{id}/model + If-None-Match (304)"] = _capacity(gen, srv.port, polls, 304)
        with noop_server() as srv:
            pin(srv.pid, server_cpus)
            noop = _capacity(gen, srv.port, workloads["GET /healthz"])
    return _render(command, bundle_dir, edge, cloud, noop, mix, mix_encodes, load_before, server_cpus, gen_cpus)


def _row(server: str, name: str, cap: Capacity, base: Capacity | None, target: str = "") -> str:
    """One table row; `base` is the same server's /healthz (None: this row has no baseline)."""
    share = "-" if base is None else "baseline" if cap is base else f"{cap.rate / base.rate:.0%}" if base.rate else "0%"
    half = f"{cap.half.p50_ms:.2f} / {cap.half.p99_ms:.2f}" if cap.half else "-"
    at, above = cap.at_rate, cap.failed_above
    gen = f"{at.generator_rate:,.0f}/{at.target_rate:,.0f}, lag p99 {at.generator_lag_p99_ms:.1f} ms" if at else "-"
    stop = why_failed(above) if above else "-"
    return (
        f"| {server} | {name} | **{cap.rate:,.0f}** ({cap.limited_by}) | {share} | {half} | {gen} | {stop} | {target} |"
    )


def _render(
    command: str,
    bundle_dir: Path,
    edge: dict[str, dict[str, Capacity]],
    cloud: dict[str, Capacity],
    noop: Capacity,
    mix: OpenLoopResult,
    mix_encodes: set[int],
    load_before: tuple[float, float, float],
    server_cpus: set[int] | None,
    gen_cpus: set[int] | None,
) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_after = os.getloadavg()
    rows = []
    for label, caps in edge.items():
        base = caps["GET /healthz"]
        for name, cap in caps.items():
            share = cap.rate / base.rate if base.rate else 0.0
            ok = "met" if share >= ENCODE_SHARE_TARGET else "**missed**"
            rows.append(_row(f"edge, batching {label}", name, cap, base, "" if cap is base else f">= 50%: {ok}"))
    base = cloud["GET /healthz"]
    for name, cap in cloud.items():
        rows.append(_row("cloud (Redis)", name, cap, base))
    rows.append(_row("no-op (a raw asyncio server)", "any request", noop, None, "the generator's ceiling"))
    gains = {
        name: edge["on"][name].rate / edge["off"][name].rate if edge["off"][name].rate else 0.0
        for name in edge["off"]
        if "encode" in name
    }
    pays = all(g >= BATCHING_GAIN for g in gains.values())
    gain_text = ", ".join(f"{name.split(', ')[1]}: **{g:.2f}x**" for name, g in gains.items())
    enc_p50, enc_p99 = mix.percentile_ms(0.5, mix_encodes), mix.percentile_ms(0.99, mix_encodes)
    rank_ids = set(mix.request_ids) - mix_encodes
    rank_p50, rank_p99 = mix.percentile_ms(0.5, rank_ids), mix.percentile_ms(0.99, rank_ids)
    ratio = enc_p99 / enc_p50
    pinned = (
        f"server (and its Redis) pinned to CPU {sorted(server_cpus)}, generator to CPU {sorted(gen_cpus)}"
        if server_cpus and gen_cpus
        else "not pinned (one CPU, or the machine was too busy for pinning to help: see `PIN_BELOW_SPARE`)"
    )

    def fmt(x: tuple[float, float, float]) -> str:
        return " / ".join(f"{v:.2f}" for v in x)

    table = "\n".join(rows)
    baselines = {f"edge (batching {label})": caps["GET /healthz"] for label, caps in edge.items()}
    baselines["cloud"] = cloud["GET /healthz"]
    near = [f"{server} /healthz" for server, b in baselines.items() if b.rate >= NEAR_CEILING * noop.rate]
    ceiling_note = (
        f"{', '.join(near)} reached {NEAR_CEILING:.0%} or more of the generator's own ceiling (the no-op row), so"
        " those baselines are floors: the servers' true /healthz capacity may be higher, and every share against"
        " them is an upper bound (a missed share target stays missed)."
        if near
        else "No /healthz baseline came near the generator's own ceiling (the no-op row)."
    )
    return f"""
## Serving: capacity and tail under an open-loop load

`{command}` on {now}; {machine_line()}; bundle `{repo_relative(bundle_dir)}`. Load average (1/5/15 min) before
the run {fmt(load_before)}, after it {fmt(load_after)}: other jobs share these CPUs and are not controlled.
Generator: `loadtests/open_loop.py`, a raw asyncio HTTP/1.1 keep-alive client in its own process, requests at a
fixed rate, latency from each request's scheduled send time, at most 256 outstanding; {pinned}.

Capacity: the highest rate with p99 <= {P99_LIMIT_MS:.0f} ms, no failure and nothing overloaded (doubling from
100 req/s, then bisection to 10%; a failing rate is run twice, since one descheduling by another job fails a
20 ms p99; runs of >= 2 s and >= 400 requests). "(server)": a higher rate failed on the server's side;
"(generator)": the generator could not keep a higher rate, so the figure is a floor. Edge servers: cache off,
every encode runs the model. Shares are against GET /healthz on the same server in the same run. "stopped by":
the lowest rate above capacity that failed, and how. The last row is the generator against a server that does
nothing (its own ceiling here): a server figure near it is a floor, not the server's capacity.

| server | endpoint | capacity/s | vs healthz | p50/p99 ms at half | generator sent/target, lag | stopped by | target |
|---|---|---|---|---|---|---|---|
{table}

{ceiling_note}

Batching (capacity on / off, same run): {gain_text}; on by default only at >= {BATCHING_GAIN:.1f}x for both:
{"it pays, so it should be on" if pays else "it does not, so it stays opt-in (`--batching`)"}.

`make load` edge mix, open loop at {MIX_RATE:.0f} req/s for {MIX_SECONDS:.0f} s (encode 1-4 texts x 3, rank 50 x 100
x 1, cache on and warmed by one pass, batching off: the default server): {mix.ok} ok, {mix.failed} failed,
{mix.overloaded} overloaded; `/v1/encode` p50 {enc_p50:.2f} ms, p99 {enc_p99:.2f} ms = **{ratio:.1f}x** p50
(target <= 5x: {"met" if ratio <= 5 else "**missed**"}); `/v1/rank` p50 {rank_p50:.2f} ms, p99 {rank_p99:.2f} ms.
"""


if __name__ == "__main__":  # pragma: no cover - manual runs: python -m loadtests.bench_serving BUNDLE
    print(bench_serving(Path(sys.argv[1]), "python -m loadtests.bench_serving " + sys.argv[1]))
