"""`eibert bench` edge section: the edge node measured over real HTTP, against baselines from the same run.

Each server is `python -m service.edge` (uvicorn) in its own process on 127.0.0.1, started by
`service.devstack.processes`, and the client is this process, so client and server never share a GIL. Every loop is
bounded by a request count. Figures:

- server CPU time per request (user + sys of the server process from /proc/<pid>/stat, over many sequential
  keep-alive requests): /v1/encode with one short text (cache off) and /v1/rank 50 x 100 (warm cache), each
  as a ratio to GET /healthz on the same server, measured in interleaved rounds so that a change in the
  machine's load hits both sides alike. CPU time, unlike latency, does not count the time the server waits
  for a core, so it is the robust figure on a shared machine.
- POST /v1/encode, one short text, p50, against a GET /healthz round trip from the same client and server
  (the HTTP floor): with the cache off (every call runs the model) and on (the text is cached).
- POST /v1/rank, 50 behaviours x 100 candidates: p50/p99 cold (cache off: 150 texts encoded per call) and
  warm (the same request again: every text cached).
- RSS added by loading the bundle, in a fresh process: the first load (which also initialises onnxruntime's
  environment) and a second load of the same bundle (what one more model costs, e.g. during a hot swap).
- /v1/encode with N concurrent clients, micro-batching on (1 worker; one per core) vs off (the default):
  requests per second and server CPU per request, cache off in all; batching is worth its default only if it
  raises capacity (requests per server CPU second) by 20%.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import httpx

from loadtests.edge_workloads import (
    CONCURRENCY,
    N_BEHAVIORS,
    N_CANDIDATES,
    THROUGHPUT_REQUESTS,
    bench_texts,
    edge_server,
    get_ok,
    model_cpu_ms,
    post_ok,
    rank_body,
    rss_added,
    throughput,
)
from model_store.data.paths import repo_relative
from service.common.manifest import verify_bundle
from service.devstack.bench_file import machine_line
from service.devstack.server_cpu import CPU_ROUNDS, cpu_per_request
from service.devstack.timing import time_call

REPEATS = 300  # latency samples per figure
RANK_REPEATS = 100
CPU_REQUESTS = 2000  # sequential requests per CPU figure (healthz and encode), in CPU_ROUNDS interleaved rounds
RANK_CPU_REQUESTS = 400


def bench_edge(bundle_dir: Path, command: str) -> str:
    """Run every edge figure against `bundle_dir`; returns the BENCHMARKS.md section."""
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    texts = bench_texts()
    short = min(texts[:500], key=len)  # a real, short item text
    rank_texts = texts[500 : 500 + N_BEHAVIORS + N_CANDIDATES]
    rank_request = rank_body(rank_texts)
    model_ms = model_cpu_ms(bundle_dir, short)
    mem = rss_added(bundle_dir, short, max(texts, key=len))
    first, second, tok_mem, batch_mem = mem["first"], mem["second"], mem["tokenizer"], mem["batch"]

    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        tmp_path = Path(tmp)
        with edge_server(bundle_dir, tmp_path / "a") as srv, httpx.Client(base_url=srv.url, timeout=60.0) as c:
            health_cached = time_call(get_ok(c, "/healthz"), REPEATS)
            encode_hit = time_call(post_ok(c, "/v1/encode", {"texts": [short]}), REPEATS)
            rank_warm = time_call(post_ok(c, "/v1/rank", rank_request), RANK_REPEATS)
            cpu_warm = cpu_per_request(
                srv.pid,
                {
                    "healthz": (get_ok(c, "/healthz"), CPU_REQUESTS),
                    "rank": (post_ok(c, "/v1/rank", rank_request), RANK_CPU_REQUESTS),
                },
            )
        cold = edge_server(bundle_dir, tmp_path / "b", "--cache-size", "0")
        with cold as srv, httpx.Client(base_url=srv.url, timeout=60.0) as c:
            health = time_call(get_ok(c, "/healthz"), REPEATS)
            encode_miss = time_call(post_ok(c, "/v1/encode", {"texts": [short]}), REPEATS)
            rank_cold = time_call(post_ok(c, "/v1/rank", rank_request), RANK_REPEATS, warmup=3)
            cpu_cold = cpu_per_request(
                srv.pid,
                {
                    "healthz": (get_ok(c, "/healthz"), CPU_REQUESTS),
                    "encode": (post_ok(c, "/v1/encode", {"texts": [short]}), CPU_REQUESTS),
                },
            )
        with edge_server(bundle_dir, tmp_path / "c", "--cache-size", "0", "--batching") as srv:
            batched = asyncio.run(throughput(srv, texts))
        cores = str(os.cpu_count() or 1)
        batching_n = ("--cache-size", "0", "--batching", "--batch-workers", cores)
        with edge_server(bundle_dir, tmp_path / "c2", *batching_n) as srv:
            batched_n = asyncio.run(throughput(srv, texts))
        with edge_server(bundle_dir, tmp_path / "d", "--cache-size", "0", "--no-batching") as srv:
            unbatched = asyncio.run(throughput(srv, texts))

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) + f" (1/5/15 min, {os.cpu_count()} CPUs)"
    model_bytes = manifest.files["model.onnx"].bytes
    tok_bytes = manifest.files["tokenizer.json"].bytes
    ratio_miss = encode_miss.p50_ms / health.p50_ms
    ratio_hit = encode_hit.p50_ms / health_cached.p50_ms
    batching_gain = batched.capacity / unbatched.capacity
    batching_pays = batching_gain >= 1.2
    cpu_encode = cpu_cold["encode"] / cpu_cold["healthz"]
    cpu_rank = cpu_warm["rank"] / cpu_warm["healthz"]

    def verdict(ok: bool) -> str:
        return "meets target" if ok else "misses target"

    rows = [
        (
            "server CPU per request: GET /healthz (cache-off server / cache-on server)",
            f"{cpu_cold['healthz']:.3f} / {cpu_warm['healthz']:.3f} ms",
            "baseline (same server)",
        ),
        (
            "server CPU per request: POST /v1/encode, 1 short text, cache off",
            f"{cpu_cold['encode']:.3f} ms = **{cpu_encode:.2f}x** healthz",
            f"<= 1.5x: {verdict(cpu_encode <= 1.5)}",
        ),
        (
            f"server CPU per request: POST /v1/rank {N_BEHAVIORS} x {N_CANDIDATES}, warm cache",
            f"{cpu_warm['rank']:.3f} ms = **{cpu_rank:.2f}x** healthz",
            f"<= 5x: {verdict(cpu_rank <= 5)}",
        ),
        (
            "the model alone: CPU of one `encode([short text])` in a hot loop in this process (tokenise, run, norm)",
            f"{model_ms:.3f} ms = {model_ms / cpu_cold['healthz']:.2f}x healthz",
            "the floor under the encode figure",
        ),
        ("GET /healthz round trip, p50 (cache-off server)", f"{health.p50_ms:.3f} ms", "baseline"),
        (
            "POST /v1/encode, 1 short text, model run (cache off), p50",
            f"{encode_miss.p50_ms:.3f} ms = **{ratio_miss:.2f}x** healthz",
            f"<= 1.5x: {verdict(ratio_miss <= 1.5)}",
        ),
        (
            f"POST /v1/encode, same text cached, p50 (its server's healthz: {health_cached.p50_ms:.3f} ms)",
            f"{encode_hit.p50_ms:.3f} ms = {ratio_hit:.2f}x healthz",
            "(cache hit)",
        ),
        (
            f"POST /v1/rank {N_BEHAVIORS} x {N_CANDIDATES}, cold cache (150 texts encoded), p50 / p99",
            f"{rank_cold.p50_ms:.2f} / **{rank_cold.p99_ms:.2f}** ms",
            "p99 reported",
        ),
        (
            f"POST /v1/rank {N_BEHAVIORS} x {N_CANDIDATES}, warm cache, p50 / p99",
            f"{rank_warm.p50_ms:.2f} / **{rank_warm.p99_ms:.2f}** ms",
            f"p99 < 10 ms: {verdict(rank_warm.p99_ms < 10)}",
        ),
        (
            "RSS added by the first load: total (private heap + onnxruntime code paged in)",
            f"**{first['VmRSS']:.1f} MB** ({first['RssAnon']:.1f} + {first['RssFile']:.1f})",
            f"<= 8 MB: {verdict(first['VmRSS'] <= 8)}",
        ),
        (
            "of which the tokenizer (vocabulary + `tokenizers` code); the rest is the onnxruntime session",
            f"{tok_mem['VmRSS']:.1f} MB ({tok_mem['RssAnon']:.1f} + {tok_mem['RssFile']:.1f})",
            "see the note below",
        ),
        (
            "RSS added by one full-width batch of 32 texts after loading (onnxruntime's memory arena)",
            f"{batch_mem['VmRSS']:.1f} MB ({batch_mem['RssAnon']:.1f} + {batch_mem['RssFile']:.1f})",
            "kept: see the note below",
        ),
        (
            "RSS added by a second load of the same bundle: what one more model costs (e.g. during a swap)",
            f"{second['VmRSS']:.1f} MB ({second['RssAnon']:.1f} + {second['RssFile']:.1f})",
            f"paper budget 4 MB: {verdict(second['VmRSS'] <= 4)}",
        ),
        (
            f"/v1/encode throughput, {CONCURRENCY} concurrent clients, micro-batching, 1 worker",
            f"{batched.per_s:.0f} req/s, server CPU {batched.cpu_ms:.3f} ms/request",
            f"capacity vs off: **{batching_gain:.2f}x**; on by default would need >= 1.2x: {verdict(batching_pays)}",
        ),
        (
            f"/v1/encode throughput, {CONCURRENCY} concurrent clients, micro-batching, {cores} workers",
            f"{batched_n.per_s:.0f} req/s, server CPU {batched_n.cpu_ms:.3f} ms/request",
            f"capacity vs off: {batched_n.capacity / unbatched.capacity:.2f}x",
        ),
        (
            f"/v1/encode throughput, {CONCURRENCY} concurrent clients, no batching (the default)",
            f"{unbatched.per_s:.0f} req/s, server CPU {unbatched.cpu_ms:.3f} ms/request",
            "baseline",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    return f"""
## Edge node: {manifest.name} {manifest.version} (dim {manifest.dim})

`{command}` on {now}; {machine_line()}; bundle `{repo_relative(bundle_dir)}` (model.onnx {model_bytes:,} B,
tokenizer.json {tok_bytes:,} B). Servers: `python -m service.edge.cli` (uvicorn, 1 onnxruntime thread) on
127.0.0.1, client httpx with keep-alive in another process. Load average at the end of the run (other jobs are
not controlled): {load}.

| figure | value | target |
|---|---|---|
{table}

Server CPU: user + sys of the server process from `/proc/<pid>/stat` over {CPU_REQUESTS:,} sequential keep-alive
requests per healthz/encode figure ({RANK_CPU_REQUESTS} per rank figure) in {CPU_ROUNDS} interleaved rounds.
Short text: "{short}" ({len(short)} chars). Rank request: {N_BEHAVIORS} behaviours and {N_CANDIDATES} candidates,
real item texts. Samples: {REPEATS} per encode/healthz figure, {RANK_REPEATS} per rank figure, after warm-up
calls; throughput: {THROUGHPUT_REQUESTS} one-text requests after a warm-up round, cache off, max batch 32, max
wait 0 ms. RSS baseline: a fresh interpreter with numpy, onnxruntime, tokenizers, httpx and fastapi imported;
a load = verify hashes, tokenizer, session, warm-up, one encode, then `malloc_trim`.

Memory: of the first load's {first["VmRSS"]:.1f} MB, {first["RssFile"]:.1f} MB are library code: pages of onnxruntime's
and `tokenizers`' shared objects faulted in by the first session and the first encode (read-only, file-backed,
shared with every other process that maps the same libraries, and dropped by the kernel under pressure). The
private heap is {first["RssAnon"]:.1f} MB: the tokenizer's vocabulary ({tok_mem["RssAnon"]:.1f} MB) and the session
(the int8 weights, {model_bytes:,} B on disk, plus the optimised graph and its kernels); a second load costs
{second["VmRSS"]:.1f} MB, all heap. Serving a full-width batch grows onnxruntime's CPU arena, which keeps the memory
for the next batch; without the arena the same batch runs markedly slower, so the arena stays on.
Capacity is requests per second of server CPU (1000 / CPU ms per request) while 32 clients keep requests in
flight: unlike requests per second it does not depend on how fast this Python client can send. Micro-batching
is on by default only if it raises that capacity by >= 20% over no batching (issue 14); it is opt-in
(`--batching`) as long as this row says it misses.
"""


if __name__ == "__main__":  # pragma: no cover - manual runs: python -m loadtests.bench_edge BUNDLE
    print(bench_edge(Path(sys.argv[1]), "python -m loadtests.bench_edge " + sys.argv[1]))
