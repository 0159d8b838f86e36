"""A request's compute is bounded, and a flood is shed with 429 + Retry-After instead of stalling everyone.

One maximal anonymous /v1/rank with fresh texts used to cost seconds of compute that every other request
waited behind: the per-request character budget refuses it before any text is tokenised, and the admission
limit refuses work beyond `max_pending_chars` while a small request still gets through.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.edge.app import create_app
from service.edge.schemas import MAX_REQUEST_CHARS, MAX_TEXT_CHARS
from tests.edge.running_app import serve
from tests.rss import peak_rss_growth

MIB = 1024 * 1024

pytestmark = pytest.mark.anyio


def fresh(prefix: str, n: int, chars: int) -> list[str]:
    """n distinct texts of exactly `chars` characters (never in any cache)."""
    return [f"{prefix} {i} ".ljust(chars, "x") for i in range(n)]


def misses(state) -> float:
    return state.metrics.registry.get_sample_value("eibert_edge_cache_misses_total") or 0.0


async def test_the_largest_rank_the_body_limit_admits_is_refused_before_tokenising(
    tiny_bundle: Path, make_settings
) -> None:
    texts = fresh("fresh", 500, MAX_TEXT_CHARS)  # ~1 MB of JSON: just under the default 1 MiB body limit
    body = {
        "behaviors": [{"text": t, "ts": float(i)} for i, t in enumerate(texts[:100])],
        "candidates": [{"id": str(i), "text": t} for i, t in enumerate(texts[100:])],
    }
    app = create_app(make_settings(tiny_bundle))
    async with serve(app) as client:
        before = misses(app.state.edge)
        start = time.perf_counter()
        r = await client.post("/v1/rank", json=body)
        assert r.status_code == 422, r.text
        assert f"the limit is {MAX_REQUEST_CHARS} per request" in r.json()["message"]
        assert time.perf_counter() - start < 5.0  # validation only (seconds of inference before)
        assert misses(app.state.edge) == before  # not one text reached the tokenizer
        r = await client.post("/v1/encode", json={"texts": fresh("enc", 51, MAX_TEXT_CHARS)})  # 102,000 chars
        assert r.status_code == 422 and str(MAX_REQUEST_CHARS) in r.json()["message"]


async def test_a_request_within_the_budget_is_served(tiny_bundle: Path, make_settings) -> None:
    n = MAX_REQUEST_CHARS // MAX_TEXT_CHARS  # exactly the budget
    body = {"behaviors": [], "candidates": [{"id": str(i), "text": t} for i, t in enumerate(fresh("ok", n, 2000))]}
    async with serve(create_app(make_settings(tiny_bundle))) as client:
        r = await client.post("/v1/rank", json={**body, "top_k": n})
        assert r.status_code == 200 and len(r.json()["items"]) == n


def encode_body(texts: list[str]) -> dict:
    return {"texts": texts}


def embeddings_body(texts: list[str]) -> dict:
    return {"model": "tiny", "input": texts}


@pytest.mark.parametrize(("route", "body"), [("/v1/encode", encode_body), ("/v1/embeddings", embeddings_body)])
async def test_a_flood_gets_429_with_retry_after_while_a_small_request_completes(
    tiny_bundle: Path, make_settings, route: str, body
) -> None:
    # inline_budget_ms=0: every batch runs in the worker thread, so the first flood request is still in flight
    # when the others arrive (they are started together on one event loop).
    # Each flood request is 32 texts x (min(1500, 4 x 64) + 32) = 9,216 units: one fits, a second does not,
    # and the small request (49 units) still does.
    settings = make_settings(tiny_bundle, max_pending_chars=12_000, inline_budget_ms=0.0)
    async with serve(create_app(settings)) as client:
        flood = [client.post(route, json=body(fresh(f"flood{i}", 32, 1500))) for i in range(6)]
        small = client.post(route, json=body(["one small request"]))
        *flooded, answered = await asyncio.gather(*flood, small)
        assert answered.status_code == 200, answered.text
        statuses = [r.status_code for r in flooded]
        assert set(statuses) == {200, 429} and statuses[0] == 200, statuses
        for r in flooded:
            if r.status_code == 429:
                assert r.headers["retry-after"] == "1"
                err = r.json()["error"]  # OpenAI's shape on /v1/embeddings (its clients back off on this type)
                if isinstance(err, dict):
                    assert (err["type"], err["code"]) == ("rate_limit_error", "overloaded"), err
                    err, message = err["code"], err["message"]
                else:
                    message = r.json()["message"]
                assert err == "overloaded" and "max_pending_chars" in message
        # once the work is done the node admits again, and the refused texts were never half-encoded
        again = await client.post(route, json=body(fresh("flood1", 32, 1500)))
        assert again.status_code == 200


async def test_a_request_larger_than_the_admission_limit_still_runs_on_an_idle_node(
    tiny_bundle: Path, make_settings
) -> None:
    """The limit sheds load; it never makes a valid request impossible."""
    app = create_app(make_settings(tiny_bundle, max_pending_chars=100))  # 10 texts x 82 units = 820
    async with serve(app) as client:
        r = await client.post("/v1/encode", json={"texts": fresh("lone", 10, 50)})
        assert r.status_code == 200 and len(r.json()["embeddings"]) == 10
        assert app.state.edge.embedder.pending == 0  # admitted work is always released


def test_the_embedding_cache_is_bounded_in_bytes_for_long_astral_texts(tiny_bundle: Path, make_settings) -> None:
    """Issue 22: 8,192 distinct 2,000-character astral texts (one [UNK] token each, cheap to encode) grew the edge
    by 126 MiB against a documented 12 MB for the cache: it bounded entries, not bytes."""
    settings = make_settings(tiny_bundle)
    per_request = MAX_REQUEST_CHARS // MAX_TEXT_CHARS
    with TestClient(create_app(settings)) as client:
        client.post("/v1/encode", json={"texts": ["warm"]})
        with peak_rss_growth() as growth:
            for start in range(0, 8192, per_request):
                texts = [chr(0x10000 + i) * MAX_TEXT_CHARS for i in range(start, min(start + per_request, 8192))]
                assert client.post("/v1/encode", json={"texts": texts}).status_code == 200
        cache = client.app.state.edge.cache
    assert cache.bytes <= settings.cache_max_bytes and len(cache) < 8192
    # RSS is the cache plus the allocator's slack from 164 requests' freed bodies and strings: 24-48 MiB measured
    # (alone, and inside a full test worker); the unbounded cache grew 130+ MiB
    assert growth.mib < settings.cache_max_bytes / MIB + 32, f"grew {growth.mib:.0f} MiB"
