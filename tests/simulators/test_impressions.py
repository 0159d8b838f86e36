"""A device's impression log: bounded, and read back as a validated log with each item's features."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.impressions import ImpressionBuffer


def test_the_log_keeps_the_newest_impressions_within_its_capacity() -> None:
    buf = ImpressionBuffer(capacity=8)
    for i in range(100):
        buf.add(f"item{i}", i % 10, i % 3 == 0, float(i))
    assert buf.total == 100 and 8 <= len(buf) <= 10  # trimmed in batches
    log = buf.to_log(lambda items: np.array([[float(str(x)[4:])] for x in items]))
    assert len(log) == 8
    np.testing.assert_array_equal(log.features[:, 0], np.arange(92, 100))
    np.testing.assert_array_equal(log.positions, np.arange(92, 100) % 10)
    np.testing.assert_array_equal(log.clicks, (np.arange(92, 100) % 3 == 0).astype(float))
    assert buf.clicks() == int(log.clicks.sum())


def test_features_that_do_not_match_the_log_are_refused() -> None:
    buf = ImpressionBuffer()
    buf.add("a", 0, True, 0.0)
    with pytest.raises(ValueError, match="features must be"):
        buf.to_log(lambda items: np.zeros((2, 3)))
    with pytest.raises(ValueError, match="finite"):
        buf.to_log(lambda items: np.full((1, 3), np.nan))
    with pytest.raises(ValueError, match="capacity"):
        ImpressionBuffer(capacity=0)
