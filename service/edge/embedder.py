"""Texts -> embedding rows for one request: cache first, then the micro-batcher (or a direct call) for misses.

A cheap request (the `inline` policy: texts x the model's measured short-text cost within a budget) that
finds the batcher idle runs at once on the event loop: there is nothing to merge it with, and the queue and
thread hand-off would cost more than the model. Everything else goes through the batcher.

Everything is done with the `LoadedModel` the request captured, so its rows and its reported version agree.

Admission (load shedding): the encoding work admitted and not yet done is counted; a request whose misses
would take it over `max_pending_chars` is refused with `Overloaded` (429 + Retry-After) instead of queueing,
because a queue without a bound makes every request wait behind a flood (one maximal rank would delay
everything else by seconds). Work is counted in characters the model actually reads: a text counts up to
4 x max_length characters (the tokenizer truncates to max_length tokens, ~4 characters each) plus
TEXT_OVERHEAD_CHARS for its fixed cost. Measured on eibert-0.3.0 (one thread, busy machine) that is close to
linear: ~3 us per unit for 50-, 500- and 2,000-character texts alike. A request is always admitted when
nothing is pending, so the largest valid request still runs; cache hits need no admission at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np

from service.edge.batching import MicroBatcher
from service.edge.cache import EmbeddingCache
from service.edge.metrics import EdgeMetrics
from service.edge.slot import LoadedModel

RETRY_AFTER_S = 1  # the pending work is bounded to well under a second, so a client may try again after that
CHARS_PER_TOKEN = 4  # a generous average for the WordPiece vocabulary: beyond max_length tokens nothing is read
TEXT_OVERHEAD_CHARS = 32  # the per-text cost (special tokens, padding, pooling), in character units


def encoding_work(model: LoadedModel, texts: Sequence[str]) -> int:
    """The cost of encoding `texts` on `model`, in character units (see the module docstring)."""
    window = CHARS_PER_TOKEN * model.manifest.max_length
    return sum(min(len(t), window) + TEXT_OVERHEAD_CHARS for t in texts)


class Overloaded(Exception):
    """Too much encoding work is already admitted; the client should retry after `headers["Retry-After"]`."""

    def __init__(self, pending: int, wanted: int, limit: int) -> None:
        super().__init__(
            f"the node is busy: {pending} units of encoding work are pending and this request adds {wanted}, "
            f"past the limit of {limit} (max_pending_chars); retry after {RETRY_AFTER_S} s"
        )
        self.headers = {"Retry-After": str(RETRY_AFTER_S)}


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
        max_pending_chars: int | None = None,
    ) -> None:
        self.cache = cache
        self.batcher = batcher
        self.metrics = metrics
        self.inline = inline  # cheap enough to run on the event loop?
        self.max_pending_chars = max_pending_chars  # None: no admission limit
        self.pending = 0  # encoding work admitted and not finished, in character units

    def _admit(self, n: int) -> None:
        limit = self.max_pending_chars
        if limit is not None and self.pending and self.pending + n > limit:
            raise Overloaded(self.pending, n, limit)
        self.pending += n

    async def embed(self, model: LoadedModel, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), model.dim) float32 rows, L2-normalised, in input order; repeated texts encoded once."""
        unique = list(dict.fromkeys(texts))
        cached = self.cache.lookup(model.key, unique)
        misses = [t for t, row in zip(unique, cached, strict=True) if row is None]
        fresh: dict[str, np.ndarray] = {}
        if misses:
            work = encoding_work(model, misses)
            self._admit(work)
            try:
                rows = await self._encode(model, misses)
            finally:
                self.pending -= work
            if rows.shape != (len(misses), model.dim):
                raise RuntimeError(f"encoder returned {rows.shape} for {len(misses)} texts of dim {model.dim}")
            self.cache.store(model.key, misses, rows)
            fresh = dict(zip(misses, rows, strict=True))
        by_text = {t: row for t, row in zip(unique, cached, strict=True) if row is not None} | fresh
        out = np.empty((len(texts), model.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = by_text[t]
        return out

    async def _encode(self, model: LoadedModel, misses: list[str]) -> np.ndarray:
        cheap = self.inline is not None and self.inline(model, misses)
        if self.batcher is not None and not (cheap and self.batcher.idle):
            return np.asarray(await self.batcher.submit(model, misses), dtype=np.float32)
        # no batcher, or nothing to merge with and cheaper than a thread hand-off: run it now
        rows = encode_batch(model, misses) if cheap else await asyncio.to_thread(encode_batch, model, misses)
        self.metrics.batch_size.observe(len(misses))
        return rows
