"""The distillation corpus from the shared data, and which of its sentences are catalogue texts."""

from __future__ import annotations

from model_store.build_config import CorpusConfig
from model_store.corpus import _clean, catalogue_indices, catalogue_sources, collect, text_key
from model_store.data import data_file, load_sts


def test_corpus_is_deduplicated_and_never_holds_sts_dev() -> None:
    c = collect(CorpusConfig(limit=5000))
    texts = c.train + c.heldout
    assert len(texts) == 5000 and len({t.lower() for t in texts}) == len(texts)
    dev = {s for p in load_sts(data_file("stsb", "sts-dev.csv.gz")) for s in (p.sentence1, p.sentence2)}
    assert not dev & set(texts)
    assert c.sources["movielens/items"] > 9000 and c.sources["mind/news"] > 0


def test_catalogue_indices_find_exactly_the_item_and_news_texts() -> None:
    cfg = CorpusConfig(limit=5000)
    c = collect(cfg)
    idx = catalogue_indices(cfg, c)
    # Catalogue texts as the corpus stores them: whitespace-normalised, long abstracts cut at a word.
    catalogue = {text_key(_clean(t, cfg.max_chars)) for texts in catalogue_sources(cfg).values() for t in texts}
    assert idx == sorted(set(idx)) and idx
    assert all(text_key(c.train[i]) in catalogue for i in idx)
    found = set(idx)
    assert not [t for i, t in enumerate(c.train) if text_key(t) in catalogue and i not in found]
    # The share matches the sources: ~14k catalogue texts among ~163k sentences.
    assert 0.04 < len(idx) / len(c.train) < 0.15
    assert catalogue_indices(cfg.model_copy(update={"movielens": False, "mind": False}), c) == []
