"""LRU embedding cache keyed by (model key, text).

The model key names one loaded bundle (version and model hash), so after a swap the old model's vectors can
never be served for the new model: they simply stop matching and age out. A user's behaviour texts recur
across /v1/rank calls (the same history re-ranked against new candidates), which is what makes this pay.
Only the event loop touches it (no locking needed); rows are stored read-only so no caller can corrupt them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np


class EmbeddingCache:
    """At most `capacity` rows; `capacity = 0` disables caching (every lookup is a miss, nothing is stored)."""

    def __init__(
        self,
        capacity: int,
        *,
        on_hits: Callable[[int], None] | None = None,
        on_misses: Callable[[int], None] | None = None,
    ) -> None:
        if capacity < 0:
            raise ValueError("cache capacity must be >= 0")
        self.capacity = capacity
        self._rows: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._on_hits = on_hits
        self._on_misses = on_misses
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, model_key: str, texts: list[str]) -> list[np.ndarray | None]:
        """The cached row for each text (None for a miss); hits become most recently used."""
        out: list[np.ndarray | None] = []
        hits = 0
        for t in texts:
            row = self._rows.get((model_key, t))
            if row is not None:
                self._rows.move_to_end((model_key, t))
                hits += 1
            out.append(row)
        misses = len(texts) - hits
        self.hits += hits
        self.misses += misses
        if hits and self._on_hits:
            self._on_hits(hits)
        if misses and self._on_misses:
            self._on_misses(misses)
        return out

    def store(self, model_key: str, texts: list[str], rows: np.ndarray) -> None:
        if self.capacity == 0:
            return
        for t, row in zip(texts, rows, strict=True):
            r = np.array(row, dtype=np.float32)  # own copy, then freeze it
            r.setflags(write=False)
            self._rows[(model_key, t)] = r
            self._rows.move_to_end((model_key, t))
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def drop_model(self, model_key: str) -> int:
        """Forget every row of one model (after a swap, to free memory at once); returns how many."""
        stale = [k for k in self._rows if k[0] == model_key]
        for k in stale:
            del self._rows[k]
        return len(stale)

    def clear(self) -> None:
        self._rows.clear()
