"""The edge section's Markdown: every one-text CPU figure against its 2x-healthz target, warm rank against 4x,
and the model's cost inside the server read off the cached and the cache-off encode."""

from __future__ import annotations

from loadtests.edge_report import CPU_TARGET, RANK_CPU_TARGET, EdgeFigures, render_edge
from loadtests.edge_workloads import Throughput
from model_store.shipped import SHIPPED_BUNDLE
from service.common.manifest import read_manifest
from service.devstack.timing import Latency


def figures(encode_x: float, embeddings_x: float, rank_x: float) -> EdgeFigures:
    mem = {"VmRSS": 1.0, "RssAnon": 0.5, "RssFile": 0.5}
    lat = Latency(p50_ms=1.0, p90_ms=1.0, p99_ms=1.0, runs=1)
    return EdgeFigures(
        bundle=SHIPPED_BUNDLE,
        manifest=read_manifest(SHIPPED_BUNDLE),
        short="Cobb (1994). Drama",
        model_ms=0.1,
        model_paused_ms=0.3,
        memory={"first": mem, "second": mem, "tokenizer": mem, "batch": mem},
        cores=2,
        health_cached=lat,
        encode_hit=lat,
        rank_warm=lat,
        cpu_warm={"healthz": 0.2, "encode_hit": 0.18, "rank": 0.2 * rank_x},
        health=lat,
        encode_miss=lat,
        rank_cold=lat,
        cpu_cold={"healthz": 0.2, "encode": 0.2 * encode_x, "embeddings": 0.2 * embeddings_x},
        batched=Throughput(300.0, 1.0),
        batched_n=Throughput(300.0, 1.0),
        unbatched=Throughput(300.0, 1.0),
    )


def row(text: str, starts: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {starts}"))


def test_each_one_text_figure_is_judged_against_2x_healthz() -> None:
    text = render_edge(figures(1.9, 2.1, 3.9), "eibert bench --sections edge")
    encode = row(text, "server CPU per request: POST /v1/encode, 1 short text, cache off")
    assert "**1.90x** healthz" in encode and f"<= {CPU_TARGET}x: meets target" in encode
    embeddings = row(text, "server CPU per request: POST /v1/embeddings")
    assert "**2.10x** healthz" in embeddings and "misses target" in embeddings
    rank = row(text, "server CPU per request: POST /v1/rank")
    assert f"<= {RANK_CPU_TARGET}x: meets target" in rank
    assert "0.180 ms = 0.90x healthz" in row(text, "server CPU per request: POST /v1/encode, the same text cached")
    assert "`eibert bench --sections edge`" in text


def test_the_model_in_the_server_is_the_cache_off_encode_less_the_cached_one() -> None:
    text = render_edge(figures(2.5, 2.5, 5.0), "c")
    assert "adds to that, 0.320 ms, is the model" in text  # 0.5 - 0.18
    assert "0.300 ms = 1.50x healthz | the floor a server pays" in row(text, "the model alone, each call after")
    assert "misses target" in row(text, "server CPU per request: POST /v1/rank")
