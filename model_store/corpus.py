"""Distillation text from the shared data (GLUE, STS-B train, QQP, MovieLens items, MIND news) and users' files.

Never STS-B dev (it scores the student) or test (held back), never MovieLens ratings. Deduplicated on a
whitespace- and case-normalised key, shuffled with a fixed seed, and split into train and a held-out slice.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from pydantic import BaseModel

from model_store import corpus_files
from model_store.build_config import CorpusConfig
from model_store.corpus_files import FileSource
from model_store.data import (
    data_file,
    item_texts,
    load_glue,
    load_movies,
    load_news,
    load_sts,
    load_tags,
    news_texts,
)
from model_store.data.glue import glue_path

_SPACE = re.compile(r"\s+")


class Corpus(BaseModel):
    train: list[str]
    heldout: list[str]
    sources: dict[str, int]  # sentences contributed per source, before deduplication
    files: list[FileSource] = []  # `[corpus] files`: size, sentences, and how many survived deduplication


def _clean(text: str, max_chars: int) -> str:
    text = _SPACE.sub(" ", text).strip()
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0]
    return text


def _glue_texts(task: str) -> list[str]:
    return [t for r in glue_rows(task) for t in (r.text_a, r.text_b) if t]


def glue_rows(task: str) -> list:
    """The task's train rows, or its dev rows where the shared data has no train file (QNLI, WNLI)."""
    split = "train"
    try:
        path = glue_path(task, split)
    except FileNotFoundError:
        path = None
    if path is None or not path.is_file():
        split = "dev"
    return load_glue(task, split=split)


def catalogue_sources(cfg: CorpusConfig) -> dict[str, list[str]]:
    """The texts devices embed as behaviours and candidates (MovieLens items, MIND news), raw, per source."""
    sources: dict[str, list[str]] = {}
    if cfg.movielens:
        root = data_file("movielens")
        movies = load_movies(root / "movies.csv.gz")
        sources["movielens/items"] = list(item_texts(movies, load_tags(root / "tags.csv.gz")).values())
    if cfg.mind:
        news = load_news(data_file("mind-sample", "MINDsmall_train", "news.tsv.gz"))
        sources["mind/news"] = [n.title for n in news] + news_texts(news)
    return sources


def catalogue_indices(cfg: CorpusConfig, corpus: Corpus) -> list[int]:
    """Indices into `corpus.train` of catalogue texts (after the same cleaning and deduplication)."""
    index = {text_key(t): i for i, t in enumerate(corpus.train)}
    keys = {text_key(_clean(t, cfg.max_chars)) for texts in catalogue_sources(cfg).values() for t in texts}
    return sorted(index[k] for k in keys if k in index)


def collect(cfg: CorpusConfig) -> Corpus:
    sources: dict[str, list[str]] = {}
    for task in cfg.glue_tasks:
        if task == "STS-B":
            raise ValueError("GLUE STS-B holds the STS-B dev set; use corpus.sts_train for STS-B train text")
        sources[f"glue/{task}"] = _glue_texts(task)
    if cfg.sts_train:
        pairs = load_sts(data_file("stsb", "sts-train.csv.gz"))
        sources["stsb/train"] = [s for p in pairs for s in (p.sentence1, p.sentence2)]
    sources |= catalogue_sources(cfg)
    files = []
    for path in cfg.files:
        sources[corpus_files.source_name(path)] = texts = corpus_files.read_texts(path)
        files.append(corpus_files.describe(path, texts))

    dev = load_sts(data_file("stsb", "sts-dev.csv.gz"))
    banned = {text_key(s) for p in dev for s in (p.sentence1, p.sentence2)}
    seen: set[str] = set()
    texts: list[str] = []
    kept: dict[str, int] = {}
    for name in sorted(sources):
        for raw in sources[name]:
            text = _clean(raw, cfg.max_chars)
            key = text_key(text)
            if text and key not in seen and key not in banned:
                seen.add(key)
                texts.append(text)
                kept[name] = kept.get(name, 0) + 1
    for f in files:
        f.kept = kept.get(corpus_files.source_name(f.path), 0)
    random.Random(cfg.seed).shuffle(texts)
    if cfg.limit is not None:
        texts = texts[: cfg.limit]
    n_held = max(1, int(len(texts) * cfg.heldout_fraction))
    sizes = {k: len(v) for k, v in sources.items()}
    return Corpus(train=texts[n_held:], heldout=texts[:n_held], sources=sizes, files=files)


def text_key(text: str) -> str:
    """The form texts are deduplicated and matched by (spacing collapsed, lower case): the build uses it too."""
    return _SPACE.sub(" ", text).strip().lower()


def save(corpus: Corpus, path: Path) -> None:
    path.write_text(corpus.model_dump_json())


def load(path: Path) -> Corpus:
    return Corpus.model_validate(json.loads(path.read_text()))
