"""The distillation corpus from the shared data and users' own files, and which sentences are catalogue texts."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from model_store.build_config import CorpusConfig
from model_store.corpus import _clean, catalogue_indices, catalogue_sources, collect, text_key
from model_store.corpus_files import MAX_LINE_CHARS, CorpusFileError, read_texts, record_paths, resolve
from model_store.data import data_file, load_sts
from model_store.stage_cache import input_hash


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


def _own(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _only_files(*files: str) -> CorpusConfig:
    return CorpusConfig(glue_tasks=(), sts_train=False, movielens=False, mind=False, files=files)


def test_own_files_plain_text_and_jsonl_are_deduplicated_with_the_rest(tmp_path: Path) -> None:
    dev = load_sts(data_file("stsb", "sts-dev.csv.gz"))[0].sentence1  # scores the student: never trained on
    txt = _own(tmp_path, "mine.txt", f"The cat sat on the mat.\n\n  the CAT  sat on the mat.\nOne more line.\n{dev}\n")
    jsonl = _own(tmp_path, "mine.jsonl", '{"text": "One more line."}\n{"text": "A JSONL sentence.", "id": 7}\n')
    c = collect(_only_files(txt, jsonl))
    assert sorted(c.train + c.heldout) == ["A JSONL sentence.", "One more line.", "The cat sat on the mat."]
    by_path = {Path(f.path).name: f for f in c.files}
    # Sources are read in name order, so mine.jsonl claims "One more line." first; in mine.txt the blank line is
    # skipped, and the respaced duplicate, the line seen in mine.jsonl and the STS-B dev sentence are dropped.
    assert (by_path["mine.jsonl"].sentences, by_path["mine.jsonl"].kept) == (2, 2)
    assert (by_path["mine.txt"].sentences, by_path["mine.txt"].kept) == (4, 1)
    assert by_path["mine.txt"].bytes == Path(txt).stat().st_size
    assert c.sources == {f"files/{txt}": 4, f"files/{jsonl}": 2}


def test_gzipped_own_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"text": "zipped sentence"}\n'))
    assert read_texts(str(path)) == ["zipped sentence"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"title": "no text"}\n', 'bad.jsonl:2: a JSONL record needs a string "text"'),
        ("bad.jsonl", '{"text": "ok"}\nnot json\n', "bad.jsonl:2: not a JSON line"),
        ("bad.jsonl", '{"text": 3}\n', 'bad.jsonl:1: a JSONL record needs a string "text"'),
        ("long.txt", "ok\n" + "x" * (MAX_LINE_CHARS + 1) + "\n", f"long.txt:2: line longer than {MAX_LINE_CHARS:,}"),
    ],
)
def test_bad_own_files_are_one_clear_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(CorpusFileError, match=re.escape(message)):
        collect(_only_files(_own(tmp_path, name, text)))


def test_missing_and_undecodable_own_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusFileError, match=r"nope\.txt: no such file"):
        record_paths((str(tmp_path / "nope.txt"),))
    with pytest.raises(CorpusFileError, match=r"nope\.txt: no such file"):
        collect(_only_files(str(tmp_path / "nope.txt")))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00 binary")
    with pytest.raises(CorpusFileError, match=r"bin\.txt: not UTF-8 text"):
        read_texts(str(tmp_path / "bin.txt"))


def test_own_files_are_recorded_relative_to_the_repository(tmp_path: Path) -> None:
    path = _own(tmp_path, "mine.txt", "hello\n")
    (recorded,) = record_paths((path,))
    assert not Path(recorded).is_absolute() and resolve(recorded).resolve() == Path(path).resolve()


def test_configs_without_files_keep_their_stage_cache_key() -> None:
    """`files` joined the corpus section later: configs that do not use it hash as they did before it existed."""
    assert "files" not in str(CorpusConfig()) and input_hash(CorpusConfig()) == "70897da3fd48f384"
    assert input_hash(CorpusConfig(files=("a.txt",))) != input_hash(CorpusConfig())
