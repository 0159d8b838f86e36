from __future__ import annotations

from model_store.benchmarks import short_text, time_call


def test_time_call_counts_runs() -> None:
    calls = []
    lat = time_call(lambda: calls.append(1), repeats=7, warmup=2)
    assert len(calls) == 9 and lat.runs == 7 and lat.p50_ms >= 0


def test_short_text_picks_exact_token_count() -> None:
    assert short_text(lambda s: len(s.split()), ["a b", "a b c d"], tokens=4) == "a b c d"
