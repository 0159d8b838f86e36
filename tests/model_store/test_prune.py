from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from model_store.build_config import PruneConfig
from model_store.prune import SPECIALS, prune_stats, select_vocab, write_tokenizer
from model_store.teacher import teacher_dir

TEXTS = ["The cat sat on the mat.", "Zyzzyva quixotically jumps!", "Toy Story (1995). Animation"]


@pytest.fixture(scope="module")
def teacher_tok():
    return teacher_dir() / "tokenizer.json"


def test_keeps_specials_characters_and_most_important_tokens(teacher_tok, tmp_path) -> None:
    vocab = json.loads(teacher_tok.read_text())["model"]["vocab"]
    importance = np.zeros(len(vocab))
    importance[vocab["cat"]] = 10.0
    importance[vocab["mat"]] = 5.0
    importance[vocab["dog"]] = 1.0
    tokens, old_ids, n_chars = select_vocab(teacher_tok, importance, TEXTS, PruneConfig(vocab_size=120))
    assert tokens[: len(SPECIALS)] == list(SPECIALS)
    assert {"cat", "mat", "z", "##z", "q", "##q"} <= set(tokens)
    assert len(tokens) == 120 and len(set(tokens)) == 120
    assert [vocab[t] for t in tokens] == list(old_ids)
    assert n_chars > 20

    out = write_tokenizer(teacher_tok, tokens, tmp_path / "tokenizer.json")
    tok = Tokenizer.from_file(str(out))
    enc = tok.encode("the cat sat quixotically")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.ids[0] == tokens.index("[CLS]") and enc.ids[-1] == tokens.index("[SEP]")
    assert "cat" in enc.tokens and "[UNK]" not in enc.tokens  # pruned words re-segment into characters

    stats = prune_stats(teacher_tok, out, TEXTS, n_chars)
    assert stats.unk_rate_pruned == 0.0
    assert 0.0 < stats.resegmented_words < 1.0
    assert stats.tokens_per_word_pruned > stats.tokens_per_word_teacher >= 1.0


def test_too_small_vocab_is_refused(teacher_tok) -> None:
    with pytest.raises(ValueError, match="smaller than"):
        select_vocab(teacher_tok, np.zeros(30522), TEXTS, PruneConfig(vocab_size=10))


def test_disabled_pruning_keeps_teacher_ids(teacher_tok) -> None:
    tokens, old_ids, _ = select_vocab(teacher_tok, np.zeros(30522), TEXTS, PruneConfig(enabled=False))
    assert len(tokens) == 30522 and list(old_ids) == list(range(30522))
