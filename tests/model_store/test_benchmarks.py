from __future__ import annotations

from model_store.benchmarks import short_text


def test_short_text_picks_exact_token_count() -> None:
    assert short_text(lambda s: len(s.split()), ["a b", "a b c d"], tokens=4) == "a b c d"
