from __future__ import annotations

from service.devstack.timing import time_call


def test_time_call_counts_runs() -> None:
    calls = []
    lat = time_call(lambda: calls.append(1), repeats=7, warmup=2)
    assert len(calls) == 9 and lat.runs == 7 and lat.p50_ms >= 0
