from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.texts import (
    SAMPLE_ENV,
    TextSample,
    build_sample,
    fallback_sample,
    load_sample,
    read_sample,
    write_sample,
)


def test_sample_round_trips_and_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_sample(tmp_path / "t.json", fallback_sample())
    assert read_sample(path) == fallback_sample()
    monkeypatch.setenv(SAMPLE_ENV, str(path))
    assert load_sample() == fallback_sample()


def test_sample_checks_its_shape() -> None:
    with pytest.raises(ValueError, match="unique"):
        TextSample(items=[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], short=["x"]).check()


def test_missing_data_root_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SAMPLE_ENV, raising=False)
    monkeypatch.setenv("EIBERT_DATA", str(tmp_path))  # exists, but holds no data set
    assert load_sample() == fallback_sample()


def test_real_sample_mixes_movielens_and_mind() -> None:
    try:
        sample = build_sample(max_movies=50, max_news=50, seed=1)
    except FileNotFoundError:
        pytest.skip("no data root")
    ids = [i["id"] for i in sample.items]
    assert sum(i.startswith("ml-") for i in ids) == 50 and sum(i.startswith("mind-") for i in ids) > 40
    assert all(0 < len(t) <= 2000 for t in sample.short)
