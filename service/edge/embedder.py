"""Texts -> embedding rows for one request: cache first, then the micro-batcher (or a direct call) for misses.

A cheap request (the `inline` policy: texts x the model's measured short-text cost within a budget) that
finds the batcher idle runs at once on the event loop: there is nothing to merge it with, and the queue and
thread hand-off would cost more than the model. Everything else goes through the batcher.

Everything is done with the `LoadedModel` the request captured, so its rows and its reported version agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np

from service.edge.batching import MicroBatcher
from service.edge.cache import EmbeddingCache
from service.edge.metrics import EdgeMetrics
from service.edge.slot import LoadedModel


def encode_batch(model: LoadedModel, texts: list[str]) -> np.ndarray:
    """The batcher's work function: one onnxruntime run over a whole micro-batch (in a worker thread)."""
    return model.encoder.encode(texts, batch_size=max(1, len(texts)))


class Embedder:
    """Owns the cache and, when batching is on, routes misses through the shared batcher."""

    def __init__(
        self,
        cache: EmbeddingCache,
        batcher: MicroBatcher | None,
        metrics: EdgeMetrics,
        inline: Callable[[LoadedModel, list[str]], bool] | None = None,
    ) -> None:
        self.cache = cache
        self.batcher = batcher
        self.metrics = metrics
        self.inline = inline  # cheap enough to run on the event loop?

    async def embed(self, model: LoadedModel, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), model.dim) float32 rows, L2-normalised, in input order; repeated texts encoded once."""
        unique = list(dict.fromkeys(texts))
        cached = self.cache.lookup(model.key, unique)
        misses = [t for t, row in zip(unique, cached, strict=True) if row is None]
        fresh: dict[str, np.ndarray] = {}
        if misses:
            cheap = self.inline is not None and self.inline(model, misses)
            if self.batcher is not None and not (cheap and self.batcher.idle):
                rows = np.asarray(await self.batcher.submit(model, misses), dtype=np.float32)
            else:  # no batcher, or nothing to merge with and cheaper than a thread hand-off: run it now
                rows = encode_batch(model, misses) if cheap else await asyncio.to_thread(encode_batch, model, misses)
                self.metrics.batch_size.observe(len(misses))
            if rows.shape != (len(misses), model.dim):
                raise RuntimeError(f"encoder returned {rows.shape} for {len(misses)} texts of dim {model.dim}")
            self.cache.store(model.key, misses, rows)
            fresh = dict(zip(misses, rows, strict=True))
        by_text = {t: row for t, row in zip(unique, cached, strict=True) if row is not None} | fresh
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = by_text[t]
        return out
