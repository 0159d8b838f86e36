"""The embedding cache: LRU order, capacity, per-model namespaces, frozen rows, hit/miss accounting."""

from __future__ import annotations

import numpy as np
import pytest

from service.edge.cache import EmbeddingCache, entry_bytes


def rows(*values: float) -> np.ndarray:
    return np.array([[v, v] for v in values], dtype=np.float32)


def test_hits_misses_and_lru_eviction() -> None:
    counted = {"hits": 0, "misses": 0}
    cache = EmbeddingCache(
        2,
        on_hits=lambda n: counted.__setitem__("hits", counted["hits"] + n),
        on_misses=lambda n: counted.__setitem__("misses", counted["misses"] + n),
    )
    assert cache.lookup("m1", ["a", "b"]) == [None, None]
    cache.store("m1", ["a", "b"], rows(1, 2))
    got = cache.lookup("m1", ["a"])  # "a" becomes most recent
    assert got[0] is not None and got[0][0] == 1
    cache.store("m1", ["c"], rows(3))  # evicts "b", the least recently used
    assert [r is not None for r in cache.lookup("m1", ["a", "b", "c"])] == [True, False, True]
    assert len(cache) == 2
    assert counted == {"hits": 3, "misses": 3} and (cache.hits, cache.misses) == (3, 3)


def test_models_do_not_share_rows_and_can_be_dropped() -> None:
    cache = EmbeddingCache(10)
    cache.store("old", ["a"], rows(1))
    assert cache.lookup("new", ["a"]) == [None]
    cache.store("new", ["a"], rows(2))
    assert cache.drop_model("old") == 1
    assert cache.lookup("old", ["a"]) == [None] and cache.lookup("new", ["a"])[0][0] == 2


def test_rows_are_copies_and_read_only() -> None:
    cache = EmbeddingCache(10)
    src = rows(1)
    cache.store("m", ["a"], src)
    src[0, 0] = 99
    row = cache.lookup("m", ["a"])[0]
    assert row[0] == 1
    with pytest.raises(ValueError):
        row[0] = 5


def test_capacity_zero_disables_and_negative_is_refused() -> None:
    cache = EmbeddingCache(0)
    cache.store("m", ["a"], rows(1))
    assert cache.lookup("m", ["a"]) == [None] and len(cache) == 0
    with pytest.raises(ValueError):
        EmbeddingCache(-1)


def test_bytes_are_bounded_as_well_as_rows() -> None:
    cache = EmbeddingCache(1000, max_bytes=3 * entry_bytes("a" * 100, rows(0)[0]))
    cache.store("m", [str(i).rjust(100, "a") for i in range(10)], rows(*range(10)))
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes  # the three most recent
    assert [r is not None for r in cache.lookup("m", [str(i).rjust(100, "a") for i in (6, 7, 8, 9)])] == [
        False,
        True,
        True,
        True,
    ]
    cache.store("m", ["\U0001f600" * 1000], rows(1))  # 4 KB of key: larger than the whole budget, never kept
    assert len(cache) == 3 and cache.lookup("m", ["\U0001f600" * 1000]) == [None]
    assert cache.drop_model("m") == 3 and cache.bytes == 0
