"""What the edge benchmark (`loadtests/bench_edge.py`) runs: real `eibert edge` servers (through
`service.devstack.processes`), the texts and request bodies it sends, the resident-memory probe, the concurrent-clients
throughput run and the in-process model floor.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.devstack.processes import ROOT, ServerProcess, free_port, service_process
from service.devstack.server_cpu import WARMUP, process_cpu_s
from service.edge.schemas import MAX_TEXT_CHARS

CONCURRENCY = 32
THROUGHPUT_REQUESTS = 600
N_BEHAVIORS = 50
N_CANDIDATES = 100
MODEL_CPU_CALLS = 2000  # encode calls in the hot loop of `model_cpu_ms`
MODEL_PAUSE_S = 0.001  # `model_cpu_ms` after a pause: about one keep-alive round trip between two requests
REPEATS = 300  # latency samples per figure
RANK_REPEATS = 100
CPU_REQUESTS = 2000  # sequential requests per one-text CPU figure, in CPU_ROUNDS interleaved rounds
RANK_CPU_REQUESTS = 400


def bench_texts() -> list[str]:
    """Real item texts (MovieLens title + genres + tags) when the data is there, else synthetic ones."""
    try:
        from model_store.data import data_file, item_texts, load_movies, load_tags

        movies = load_movies(data_file("movielens", "movies.csv.gz"))
        texts = item_texts(movies, load_tags(data_file("movielens", "tags.csv.gz")))
        return [texts[k][:MAX_TEXT_CHARS] for k in sorted(texts)]  # one movie's tags run past the request limit
    except (FileNotFoundError, ValueError):
        return [f"movie number {i} (19{i % 100:02d}). Drama, Comedy. tag{i % 37}" for i in range(2000)]


def edge_server(bundle_dir: Path, state_dir: Path, *flags: str) -> ServerProcess:
    """A real `eibert edge` process (`python -m service.edge`), its log beside `state_dir`; use it as a
    context manager: ready (/readyz answered 200) inside, stopped afterwards."""
    port = free_port()
    args = ["--bundle", str(bundle_dir), "--port", str(port), "--state-dir", str(state_dir)]
    args += ["--log-level", "warning", *flags]
    return service_process("edge", args, port=port, log_path=state_dir.with_suffix(".log"))


_RSS_PROBE = """
import ctypes, json, sys
def mem():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out
def grew(a, b):
    return {k: b[k] - a[k] for k in a}
import numpy, onnxruntime, tokenizers, httpx, fastapi
from pathlib import Path
from service.edge.encoder import load_tokenizer
from service.edge.slot import load_model, release_freed_heap
bundle, text, long_text, part = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m0 = mem()
if part == "tokenizer":  # the tokenizer alone (its own fresh process), to split the first load in two
    tok = load_tokenizer(bundle / "tokenizer.json", 128)
    release_freed_heap()
    print(json.dumps({"tokenizer": grew(m0, mem())}))
    sys.exit(0)
first = load_model(bundle, threads=1, warm_up=True)
first.encoder.encode([text])
m1 = mem()
second = load_model(bundle, threads=1, warm_up=True)
second.encoder.encode([text])
m2 = mem()
first.encoder.encode([long_text] * 32)  # the largest micro-batch at full width: onnxruntime's arena grows
release_freed_heap()
m3 = mem()
print(json.dumps({"first": grew(m0, m1), "second": grew(m1, m2), "batch": grew(m2, m3)}))
"""


def rss_added(bundle_dir: Path, text: str, long_text: str) -> dict[str, dict[str, float]]:
    """MB of resident memory added by loading (and warming) the bundle, in a fresh interpreter (Linux /proc):
    VmRSS in total, RssAnon (private heap: weights, vocabulary, buffers) and RssFile (library code paged in);
    also what the tokenizer alone adds, and what one full-width batch of 32 adds after the loads."""
    out = {}
    for part in ("model", "tokenizer"):
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE, str(bundle_dir), text, long_text, part],
            cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        out.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


@dataclass(frozen=True)
class Throughput:
    per_s: float  # requests per second, as this client saw them
    cpu_ms: float  # server CPU per request meanwhile: 1000 / cpu_ms is what one core of the server sustains

    @property
    def capacity(self) -> float:
        return 1000.0 / self.cpu_ms


async def throughput(srv: ServerProcess, texts: list[str]) -> Throughput:
    """THROUGHPUT_REQUESTS one-text /v1/encode calls, CONCURRENCY in flight: requests per second, and the
    server's CPU per request meanwhile (the client is Python too and may be the bottleneck, the CPU is not)."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=srv.url, limits=limits, timeout=60.0) as client:
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < THROUGHPUT_REQUESTS:
                i = next_i
                next_i += 1
                r = await client.post("/v1/encode", json={"texts": [texts[i % len(texts)]]})
                r.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))  # warm the connections and the server
        next_i = 0
        t0, cpu0 = time.perf_counter(), process_cpu_s(srv.pid)
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        cpu_ms = 1000.0 * (process_cpu_s(srv.pid) - cpu0) / THROUGHPUT_REQUESTS
        return Throughput(THROUGHPUT_REQUESTS / (time.perf_counter() - t0), cpu_ms)


def rank_body(texts: list[str]) -> dict:
    behaviors = [
        {"text": t, "ts": 1_600_000_000.0 + 3600.0 * i, "kind": "view"} for i, t in enumerate(texts[:N_BEHAVIORS])
    ]
    cands = [{"id": f"c{i}", "text": t} for i, t in enumerate(texts[N_BEHAVIORS : N_BEHAVIORS + N_CANDIDATES])]
    return {"behaviors": behaviors, "candidates": cands, "top_k": 10}


def post_ok(client: httpx.Client, path: str, body: dict) -> Callable[[], None]:
    def call() -> None:
        r = client.post(path, json=body)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")

    return call


def model_cpu_ms(bundle_dir: Path, text: str, n: int = MODEL_CPU_CALLS, pause_s: float = 0.0) -> float:
    """CPU ms of one `encode([text])` in this process: in a hot loop (weights and code stay in the caches), or
    with `pause_s` of sleep before each call, as a server meets the model between requests (the CPU has run
    other work meanwhile: the weights come back from memory). What the HTTP path costs is not in either."""
    from service.edge.encoder import OnnxEncoder

    encoder = OnnxEncoder(bundle_dir, threads=1)
    for _ in range(WARMUP):
        encoder.encode([text])
    spent = 0.0
    if not pause_s:
        t0 = time.process_time()
        for _ in range(n):
            encoder.encode([text])
        return 1000.0 * (time.process_time() - t0) / n
    for _ in range(n):
        time.sleep(pause_s)
        t0 = time.process_time()
        encoder.encode([text])
        spent += time.process_time() - t0
    return 1000.0 * spent / n


def get_ok(client: httpx.Client, path: str) -> Callable[[], None]:
    def call() -> None:
        if client.get(path).status_code != 200:
            raise RuntimeError(f"{path} failed")

    return call
