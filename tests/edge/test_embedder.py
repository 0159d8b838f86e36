"""The embedder: cache, then a direct run when that is cheapest, else the batcher; rows always in order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from service.edge.batching import MicroBatcher
from service.edge.cache import EmbeddingCache
from service.edge.embedder import (
    CHARS_PER_TOKEN,
    TEXT_OVERHEAD_CHARS,
    Embedder,
    Overloaded,
    encode_batch,
    encoding_work,
)
from service.edge.metrics import EdgeMetrics
from service.edge.slot import LoadedModel, load_model

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def model(tiny_bundle: Path) -> LoadedModel:
    return load_model(tiny_bundle)


def batch_sizes(metrics: EdgeMetrics) -> float:
    return metrics.registry.get_sample_value("eibert_edge_batch_size_sum") or 0.0


async def test_rows_in_input_order_duplicates_encoded_once_cache_used(model: LoadedModel) -> None:
    metrics = EdgeMetrics()
    emb = Embedder(EmbeddingCache(100), None, metrics)
    texts = ["b", "a", "b", "c"]
    rows = await emb.embed(model, texts)
    np.testing.assert_allclose(rows, model.encoder.encode(texts), atol=1e-6)
    assert batch_sizes(metrics) == 3  # "b" once
    again = await emb.embed(model, ["c", "a", "new"])
    np.testing.assert_allclose(again, model.encoder.encode(["c", "a", "new"]), atol=1e-6)
    assert batch_sizes(metrics) == 4  # only "new" was encoded


async def test_cheap_work_on_an_idle_batcher_runs_directly_busy_batcher_queues_it(model: LoadedModel) -> None:
    gate, entered, seen = threading.Event(), threading.Event(), []

    def held(key, items):
        seen.append(list(items))
        entered.set()
        gate.wait(timeout=30)
        return encode_batch(key, items)

    batcher = MicroBatcher(held, max_batch_size=32, max_wait_s=0.0)
    batcher.start()
    emb = Embedder(EmbeddingCache(0), batcher, EdgeMetrics(), inline=lambda m, texts: len(texts) <= 2)
    try:
        gate.set()
        await emb.embed(model, ["cheap"])
        assert seen == []  # the batcher was idle: nothing to merge with, so no queue and no thread
        await emb.embed(model, ["x", "y", "z"])
        assert seen == [["x", "y", "z"]]  # not cheap: through the batcher

        gate.clear()
        entered.clear()
        running = asyncio.ensure_future(emb.embed(model, ["p", "q", "r"]))
        for _ in range(2000):
            if entered.is_set():
                break
            await asyncio.sleep(0.005)
        queued = asyncio.ensure_future(emb.embed(model, ["cheap too"]))  # batcher busy: it must queue
        await asyncio.sleep(0.01)
        gate.set()
        rows = await queued
        await running
        assert seen[-1] == ["cheap too"]
        np.testing.assert_allclose(rows, model.encoder.encode(["cheap too"]), atol=1e-6)
    finally:
        gate.set()
        await batcher.stop()


async def test_rows_of_the_wrong_width_fail_the_request(model: LoadedModel) -> None:
    batcher = MicroBatcher(lambda key, items: np.zeros((len(items), 3)), max_batch_size=8, max_wait_s=0.0)
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="dim"):
            await Embedder(EmbeddingCache(10), batcher, EdgeMetrics()).embed(model, ["a"])
    finally:
        await batcher.stop()


def test_encoding_work_counts_what_the_model_reads(model: LoadedModel) -> None:
    window = CHARS_PER_TOKEN * model.manifest.max_length  # 256 for the tiny bundle's 64 tokens
    assert encoding_work(model, ["a" * 10]) == 10 + TEXT_OVERHEAD_CHARS
    assert encoding_work(model, ["b" * 5000, "c" * window]) == 2 * (window + TEXT_OVERHEAD_CHARS)  # truncated


async def test_work_past_the_limit_is_refused_while_other_work_is_pending(model: LoadedModel) -> None:
    gate, entered = threading.Event(), threading.Event()

    def held(key, items):
        entered.set()
        gate.wait(timeout=30)
        return encode_batch(key, items)

    batcher = MicroBatcher(held, max_batch_size=32, max_wait_s=0.0)
    batcher.start()
    emb = Embedder(EmbeddingCache(0), batcher, EdgeMetrics(), max_pending_chars=100)
    try:
        running = asyncio.ensure_future(emb.embed(model, ["x" * 50]))  # 82 units: admitted
        for _ in range(2000):
            if entered.is_set():
                break
            await asyncio.sleep(0.005)
        with pytest.raises(Overloaded, match="max_pending_chars") as refused:
            await emb.embed(model, ["y" * 50])  # 82 + 82 > 100
        assert refused.value.headers == {"Retry-After": "1"}
        gate.set()
        await running
        assert emb.pending == 0
        assert (await emb.embed(model, ["y" * 50])).shape == (1, model.dim)  # admitted once the work is done
    finally:
        gate.set()
        await batcher.stop()
