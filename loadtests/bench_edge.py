"""`eibert bench` edge section: the edge node measured over real HTTP, against baselines from the same run.
This module measures (`measure_edge` -> `EdgeFigures`); `loadtests/edge_report.py` writes the Markdown.

Each server is `python -m service.edge` (uvicorn) in its own process on 127.0.0.1, started by
`service.devstack.processes`, and the client is this process, so client and server never share a GIL. Every loop is
bounded by a request count. Figures:

- server CPU time per request (user + sys of the server process from /proc/<pid>/stat, over many sequential
  keep-alive requests): /v1/encode and /v1/embeddings with one short text (cache off), /v1/encode with that
  text cached (the HTTP path without the model run) and /v1/rank 50 x 100 (warm cache), each as a ratio to
  GET /healthz on the same server, measured in interleaved rounds so that a change in the
  machine's load hits both sides alike. CPU time, unlike latency, does not count the time the server waits
  for a core, so it is the robust figure on a shared machine.
- POST /v1/encode, one short text, p50, against a GET /healthz round trip from the same client and server
  (the HTTP floor): with the cache off (every call runs the model) and on (the text is cached).
- POST /v1/rank, 50 behaviors x 100 candidates: p50/p99 cold (cache off: 150 texts encoded per call) and
  warm (the same request again: every text cached).
- RSS added by loading the bundle, in a fresh process: the first load (which also initialises onnxruntime's
  environment) and a second load of the same bundle (what one more model costs, e.g. during a hot swap).
- /v1/encode with N concurrent clients, micro-batching on (1 worker; one per core) vs off (the default):
  requests per second and server CPU per request, cache off in all; batching is worth its default only if it
  raises capacity (requests per server CPU second) by 20%.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import httpx

from loadtests.edge_report import EdgeFigures, render_edge
from loadtests.edge_workloads import (
    CPU_REQUESTS,
    MODEL_CPU_CALLS,
    MODEL_PAUSE_S,
    N_BEHAVIORS,
    N_CANDIDATES,
    RANK_CPU_REQUESTS,
    RANK_REPEATS,
    REPEATS,
    bench_texts,
    edge_server,
    get_ok,
    model_cpu_ms,
    post_ok,
    rank_body,
    rss_added,
    throughput,
)
from service.common.manifest import verify_bundle
from service.devstack.server_cpu import cpu_per_request
from service.devstack.timing import time_call


def bench_edge(bundle_dir: Path, command: str) -> str:
    """Run every edge figure against `bundle_dir`; returns the BENCHMARKS.md section."""
    return render_edge(measure_edge(Path(bundle_dir)), command)


def measure_edge(bundle_dir: Path) -> EdgeFigures:
    manifest = verify_bundle(bundle_dir)
    texts = bench_texts()
    short = min(texts[:500], key=len)  # a real, short item text
    rank_request = rank_body(texts[500 : 500 + N_BEHAVIORS + N_CANDIDATES])
    figures = EdgeFigures(
        bundle=bundle_dir,
        manifest=manifest,
        short=short,
        model_ms=model_cpu_ms(bundle_dir, short),
        model_paused_ms=model_cpu_ms(bundle_dir, short, n=MODEL_CPU_CALLS // 2, pause_s=MODEL_PAUSE_S),
        memory=rss_added(bundle_dir, short, max(texts, key=len)),
    )
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        tmp_path = Path(tmp)
        _warm_cache_server(figures, edge_server(bundle_dir, tmp_path / "a"), rank_request)
        _cold_cache_server(figures, edge_server(bundle_dir, tmp_path / "b", "--cache-size", "0"), rank_request)
        _throughputs(figures, bundle_dir, tmp_path, texts)
    figures.load = os.getloadavg()
    return figures


def _encode_body(f: EdgeFigures) -> dict:
    return {"texts": [f.short]}


def _embeddings_body(f: EdgeFigures) -> dict:
    return {"input": f.short, "model": f.manifest.name}


def _warm_cache_server(f: EdgeFigures, server, rank_request: dict) -> None:
    """The default server (cache on): cached encode and warm rank, beside its own /healthz."""
    with server as srv, httpx.Client(base_url=srv.url, timeout=60.0) as c:
        f.health_cached = time_call(get_ok(c, "/healthz"), REPEATS)
        f.encode_hit = time_call(post_ok(c, "/v1/encode", _encode_body(f)), REPEATS)
        f.rank_warm = time_call(post_ok(c, "/v1/rank", rank_request), RANK_REPEATS)
        f.cpu_warm = cpu_per_request(
            srv.pid,
            {
                "healthz": (get_ok(c, "/healthz"), CPU_REQUESTS),
                "encode_hit": (post_ok(c, "/v1/encode", _encode_body(f)), CPU_REQUESTS),
                "rank": (post_ok(c, "/v1/rank", rank_request), RANK_CPU_REQUESTS),
            },
        )


def _cold_cache_server(f: EdgeFigures, server, rank_request: dict) -> None:
    """Cache off: every encode and embeddings call runs the model; beside the same server's /healthz."""
    with server as srv, httpx.Client(base_url=srv.url, timeout=60.0) as c:
        f.health = time_call(get_ok(c, "/healthz"), REPEATS)
        f.encode_miss = time_call(post_ok(c, "/v1/encode", _encode_body(f)), REPEATS)
        f.rank_cold = time_call(post_ok(c, "/v1/rank", rank_request), RANK_REPEATS, warmup=3)
        f.cpu_cold = cpu_per_request(
            srv.pid,
            {
                "healthz": (get_ok(c, "/healthz"), CPU_REQUESTS),
                "encode": (post_ok(c, "/v1/encode", _encode_body(f)), CPU_REQUESTS),
                "embeddings": (post_ok(c, "/v1/embeddings", _embeddings_body(f)), CPU_REQUESTS),
            },
        )


def _throughputs(f: EdgeFigures, bundle_dir: Path, tmp_path: Path, texts: list[str]) -> None:
    """Concurrent clients against micro-batching with one worker, one per core, and no batching."""
    with edge_server(bundle_dir, tmp_path / "c", "--cache-size", "0", "--batching") as srv:
        f.batched = asyncio.run(throughput(srv, texts))
    batching_n = ("--cache-size", "0", "--batching", "--batch-workers", str(f.cores))
    with edge_server(bundle_dir, tmp_path / "c2", *batching_n) as srv:
        f.batched_n = asyncio.run(throughput(srv, texts))
    with edge_server(bundle_dir, tmp_path / "d", "--cache-size", "0", "--no-batching") as srv:
        f.unbatched = asyncio.run(throughput(srv, texts))


if __name__ == "__main__":  # pragma: no cover - manual runs: python -m loadtests.bench_edge BUNDLE
    print(bench_edge(Path(sys.argv[1]), "python -m loadtests.bench_edge " + sys.argv[1]))
