"""Latency of a call, timed in this process: the percentiles every benchmark section reports.

Wall-clock figures from different runs or machines are not comparable, so sections report them beside a
baseline timed the same way in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from pydantic import BaseModel

WARMUP = 5  # calls before anything is timed


class Latency(BaseModel):
    p50_ms: float
    p90_ms: float
    p99_ms: float
    runs: int


def time_call(fn: Callable[[], object], repeats: int, warmup: int = WARMUP) -> Latency:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    samples.sort()
    return Latency(
        p50_ms=round(statistics.median(samples), 3),
        p90_ms=round(samples[int(0.9 * (len(samples) - 1))], 3),
        p99_ms=round(samples[int(0.99 * (len(samples) - 1))], 3),
        runs=repeats,
    )
