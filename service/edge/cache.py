"""LRU embedding cache keyed by (model key, text).

The model key names one loaded bundle (version and model hash), so after a swap the old model's vectors can
never be served for the new model: they simply stop matching and age out. A user's behaviour texts recur
across /v1/rank calls (the same history re-ranked against new candidates), which is what makes this pay.
Only the event loop touches it (no locking needed); rows are stored read-only so no caller can corrupt them.

Bounded in bytes as well as rows: the key holds the text, and a text costs up to 4 bytes per character in
memory (8,192 distinct 2,000-character astral texts are 64 MB of keys alone, against 12.6 MB of rows). Each
entry is charged `entry_bytes`: the text object, the row, and a fixed overhead for the key tuple, the row's
array header and the dict slot.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

ENTRY_OVERHEAD_BYTES = 256  # key tuple (56), ndarray header (112), OrderedDict slot and link (~90)


def entry_bytes(text: str, row: np.ndarray) -> int:
    """What one cached entry holds in memory, in bytes."""
    return sys.getsizeof(text) + row.nbytes + ENTRY_OVERHEAD_BYTES


class EmbeddingCache:
    """At most `capacity` rows and `max_bytes` bytes (`entry_bytes` summed); `capacity = 0` or `max_bytes = 0`
    disables caching (every lookup is a miss, nothing is stored). `max_bytes=None` bounds rows only."""

    def __init__(
        self,
        capacity: int,
        *,
        max_bytes: int | None = None,
        on_hits: Callable[[int], None] | None = None,
        on_misses: Callable[[int], None] | None = None,
    ) -> None:
        if capacity < 0 or (max_bytes is not None and max_bytes < 0):
            raise ValueError("cache capacity and max_bytes must be >= 0")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.bytes = 0  # entry_bytes of everything held
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
        if self.capacity == 0 or self.max_bytes == 0:
            return
        for t, row in zip(texts, rows, strict=True):
            r = np.array(row, dtype=np.float32)  # own copy, then freeze it
            r.setflags(write=False)
            cost = entry_bytes(t, r)
            if self.max_bytes is not None and cost > self.max_bytes:
                continue  # could never fit: caching it would only evict everything else
            self._forget((model_key, t))
            self._rows[(model_key, t)] = r
            self.bytes += cost
        while len(self._rows) > self.capacity or (self.max_bytes is not None and self.bytes > self.max_bytes):
            (_, text), row = self._rows.popitem(last=False)
            self.bytes -= entry_bytes(text, row)

    def _forget(self, key: tuple[str, str]) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self.bytes -= entry_bytes(key[1], row)

    def drop_model(self, model_key: str) -> int:
        """Forget every row of one model (after a swap, to free memory at once); returns how many."""
        stale = [k for k in self._rows if k[0] == model_key]
        for k in stale:
            self._forget(k)
        return len(stale)

    def clear(self) -> None:
        self._rows.clear()
        self.bytes = 0
