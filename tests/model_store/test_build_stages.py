"""The build's cached stages: what their cache keys depend on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_store import build_stages
from model_store.build_config import BuildConfig, CorpusConfig
from model_store.build_stages import Stages
from model_store.corpus import Corpus, save
from model_store.stage_cache import StageDir, input_hash
from model_store.targets import IMPORTANCE_FILE, TARGETS_FILE


def _corpus_stage(cache: Path, cfg: CorpusConfig, texts: list[str]) -> tuple[StageDir, Corpus]:
    st = StageDir(cache, "corpus", input_hash(cfg))
    c = Corpus(train=texts[1:], heldout=texts[:1], sources={"x": len(texts)})
    save(c, st.path / "corpus.json")
    st.finish({})
    return st, c


def test_teacher_targets_are_keyed_by_the_corpus_content(tmp_path: Path, monkeypatch) -> None:
    computed: list[Path] = []

    def fake_targets(texts, cfg, out, **kw):  # the teacher's pass, recorded instead of run
        computed.append(out)
        np.save(out / TARGETS_FILE, np.zeros((len(texts), 4), np.float16))
        np.save(out / IMPORTANCE_FILE, np.zeros(8))

    monkeypatch.setattr(build_stages, "compute_targets", fake_targets)
    stages = Stages(BuildConfig(), tmp_path, resume=True, timings={})
    texts = ["a first sentence", "a second one", "and a third"]
    # Two corpus sections that differ only in the order they list GLUE tasks make the same corpus.
    one = CorpusConfig()
    other = CorpusConfig(glue_tasks=tuple(reversed(one.glue_tasks)))
    assert input_hash(one) != input_hash(other)
    first = stages.targets(*_corpus_stage(tmp_path, one, texts))
    second = stages.targets(*_corpus_stage(tmp_path, other, texts))
    assert first.path == second.path and len(computed) == 1  # the second build reuses the first's targets
    changed = stages.targets(*_corpus_stage(tmp_path / "b", one, [*texts, "one more sentence"]))
    assert changed.path != first.path and len(computed) == 2  # other sentences, other targets
