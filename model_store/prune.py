"""Hard token pruning: keep the vocabulary tokens the teacher attends to most, plus every seen character.

Keeping each character (and its `##` continuation form) that occurs in the corpus means a word whose pieces
were pruned is re-segmented by WordPiece into smaller kept pieces instead of collapsing to `[UNK]`. The pruned
tokenizer is the teacher's `tokenizer.json` with a smaller WordPiece vocabulary and remapped special ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from tokenizers import Tokenizer

from model_store.build_config import PruneConfig

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class PruneStats(BaseModel):
    teacher_vocab: int
    kept_vocab: int
    kept_characters: int
    heldout_words: int
    unk_rate_teacher: float  # share of held-out tokens that are [UNK], teacher tokenizer
    unk_rate_pruned: float  # ... pruned tokenizer
    resegmented_words: float  # share of held-out words whose pieces differ from the teacher's
    tokens_per_word_teacher: float
    tokens_per_word_pruned: float


def seen_characters(tok: Tokenizer, texts: list[str], vocab: dict[str, int]) -> set[str]:
    """Every vocabulary character token (`c` and `##c`) that the corpus could need."""
    chars: set[str] = set()
    for text in texts:
        chars.update(tok.normalizer.normalize_str(text))
    keep = set()
    for c in chars:
        if c.isspace():
            continue
        for form in (c, "##" + c):
            if form in vocab:
                keep.add(form)
    return keep


def select_vocab(
    teacher_tokenizer: Path, importance: np.ndarray, texts: list[str], cfg: PruneConfig
) -> tuple[list[str], np.ndarray, int]:
    """Kept tokens in new-id order and `old_ids` (new id -> teacher id)."""
    raw = json.loads(teacher_tokenizer.read_text())
    vocab: dict[str, int] = raw["model"]["vocab"]
    if not cfg.enabled:
        tokens = sorted(vocab, key=vocab.__getitem__)
        return tokens, np.array([vocab[t] for t in tokens]), 0
    tok = Tokenizer.from_file(str(teacher_tokenizer))
    chars = seen_characters(tok, texts, vocab) if cfg.keep_chars else set()
    must = set(SPECIALS) | chars
    if len(must) > cfg.vocab_size:
        raise ValueError(f"vocab_size {cfg.vocab_size} is smaller than the {len(must)} specials and characters")
    ranked = [t for t in sorted(vocab, key=lambda t: -importance[vocab[t]]) if t not in must]
    kept = must | set(ranked[: cfg.vocab_size - len(must)])
    rest = sorted((t for t in kept if t not in SPECIALS), key=vocab.__getitem__)
    tokens = [*SPECIALS, *rest]
    return tokens, np.array([vocab[t] for t in tokens]), len(chars)


def write_tokenizer(teacher_tokenizer: Path, tokens: list[str], out: Path) -> Path:
    raw = json.loads(teacher_tokenizer.read_text())
    new_ids = {t: i for i, t in enumerate(tokens)}
    raw["model"]["vocab"] = new_ids
    raw["truncation"] = None  # the runtime sets truncation and padding from the manifest
    raw["padding"] = None
    for added in raw["added_tokens"]:
        added["id"] = new_ids[added["content"]]
    for name, spec in raw["post_processor"]["special_tokens"].items():
        spec["ids"] = [new_ids[name]]
    out.write_text(json.dumps(raw, ensure_ascii=False))
    Tokenizer.from_file(str(out))  # fail here, not on a device, if the file does not load
    return out


def prune_stats(teacher_tokenizer: Path, pruned_tokenizer: Path, heldout: list[str], n_chars: int) -> PruneStats:
    teacher = Tokenizer.from_file(str(teacher_tokenizer))
    pruned = Tokenizer.from_file(str(pruned_tokenizer))
    for tok in (teacher, pruned):  # the teacher's file pads to 128; words must be compared unpadded
        tok.no_padding()
        tok.no_truncation()
    words = [
        w for text in heldout for w, _ in teacher.pre_tokenizer.pre_tokenize_str(teacher.normalizer.normalize_str(text))
    ]
    t_enc = teacher.encode_batch(words, add_special_tokens=False)
    p_enc = pruned.encode_batch(words, add_special_tokens=False)
    t_tokens = [e.tokens for e in t_enc]
    p_tokens = [e.tokens for e in p_enc]
    n_t = sum(len(t) for t in t_tokens) or 1
    n_p = sum(len(p) for p in p_tokens) or 1
    n_w = len(words) or 1
    return PruneStats(
        teacher_vocab=teacher.get_vocab_size(),
        kept_vocab=pruned.get_vocab_size(),
        kept_characters=n_chars,
        heldout_words=len(words),
        unk_rate_teacher=sum(t.count("[UNK]") for t in t_tokens) / n_t,
        unk_rate_pruned=sum(p.count("[UNK]") for p in p_tokens) / n_p,
        resegmented_words=sum(a != b for a, b in zip(t_tokens, p_tokens, strict=True)) / n_w,
        tokens_per_word_teacher=n_t / n_w,
        tokens_per_word_pruned=n_p / n_w,
    )
