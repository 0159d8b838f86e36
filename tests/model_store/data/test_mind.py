from __future__ import annotations

import pytest

from model_store.data.mind import load_behaviors, load_news, news_texts


def test_real_sample_counts_and_fields(data_dir) -> None:
    root = data_dir / "mind-sample" / "MINDsmall_train"
    news = load_news(root / "news.tsv.gz")
    behaviors = load_behaviors(root / "behaviors.tsv.gz")
    assert (len(news), len(behaviors)) == (2000, 5000)
    assert all(n.news_id.startswith("N") and n.title for n in news)
    assert all(b.impressions for b in behaviors)
    assert all(c in (0, 1) for b in behaviors for _, c in b.impressions)
    texts = news_texts(news)
    assert len(texts) == 2000 and all(texts)


def test_sample_files_were_drawn_independently(data_dir) -> None:
    """README pitfall: most behaviour news ids are absent from news.tsv, so nothing may join them blindly."""
    root = data_dir / "mind-sample" / "MINDsmall_train"
    known = {n.news_id for n in load_news(root / "news.tsv.gz")}
    shown = {nid for b in load_behaviors(root / "behaviors.tsv.gz") for nid, _ in b.impressions}
    assert len(shown & known) < 0.5 * len(shown)


def test_bad_impression_token_raises(tmp_path) -> None:
    path = tmp_path / "behaviors.tsv"
    path.write_text("1\tU1\t11/11/2019 9:05:58 AM\tN1 N2\tN3-1 N4-x\n")
    with pytest.raises(ValueError, match="bad impression token"):
        load_behaviors(path)


def test_empty_abstract_uses_title_only(tmp_path) -> None:
    path = tmp_path / "news.tsv"
    path.write_text("N1\tnews\tpolitics\tA title\t\turl\t[]\t[]\n")
    assert news_texts(load_news(path)) == ["A title"]
