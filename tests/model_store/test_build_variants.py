"""The build's variants without a build: every ablation fits the shipped student's byte budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store.build_config import BuildConfig
from model_store.build_variants import SHIPPED, teacher_vocab_size, variants
from model_store.student import Student

CONFIG = Path(__file__).resolve().parents[2] / "model_store" / "configs" / "eibert-1.9m.toml"
RECURRENT = CONFIG.parent / "experiments" / "eibert-1.9m-recurrence.toml"


def test_the_teacher_vocabulary_is_read_from_its_tokenizer() -> None:
    assert teacher_vocab_size() == 30522  # all-MiniLM-L6-v2's WordPiece vocabulary


def test_every_ablation_fits_the_shipped_byte_budget() -> None:
    cfg = BuildConfig.from_toml(CONFIG).model_copy(
        update={"ablations": ("oneway", "interplay", "static", "no_pruning")}
    )
    vocab = teacher_vocab_size()
    found = variants(cfg, teacher_vocab=vocab)
    assert found[0].name == SHIPPED and len(found) == 5
    target = Student(cfg.student, cfg.prune.vocab_size).estimated_int8_bytes()
    for v in found:
        v_vocab = vocab if not v.prune.enabled else v.prune.vocab_size
        assert Student(v.student, v_vocab).estimated_int8_bytes() <= target, v.name
    by_name = {v.name: v for v in found}
    assert by_name["static"].student.kind == "static" and not by_name["no_pruning"].prune.enabled


def test_recurrence_and_bottleneck_rows_toggle_one_technique_at_equal_bytes() -> None:
    cfg = BuildConfig.from_toml(RECURRENT)
    assert cfg.student.repeats == 2 and cfg.student.embed_dim == cfg.student.hidden  # the experiment's recipe
    cfg = cfg.model_copy(update={"ablations": ("no_recurrence", "bottleneck")})
    target = Student(cfg.student, cfg.prune.vocab_size).estimated_int8_bytes()
    shipped, flat, narrow = variants(cfg, teacher_vocab=teacher_vocab_size())
    assert (flat.student.repeats, flat.student.unique_layers) == (1, shipped.student.unique_layers)
    assert flat.student.model_copy(update={"repeats": 2}) == shipped.student and flat.prune == shipped.prune
    assert narrow.student.embed_dim == cfg.student.hidden // 2 and narrow.student.repeats == 2
    # The narrower embedding buys vocabulary: as much as fits, and 100 more would not.
    bytes_of = lambda vocab: Student(narrow.student, vocab).estimated_int8_bytes()  # noqa: E731
    assert narrow.prune.vocab_size > 1.8 * cfg.prune.vocab_size
    assert bytes_of(narrow.prune.vocab_size) <= target < bytes_of(narrow.prune.vocab_size + 100)


def test_a_toggle_that_names_the_shipped_recipe_is_refused() -> None:
    cfg = BuildConfig.from_toml(RECURRENT)
    for wrong in ("recurrence", "no_bottleneck"):  # the shipped student already recurs and has E = H
        with pytest.raises(ValueError, match=wrong):
            variants(cfg.model_copy(update={"ablations": (wrong,)}), teacher_vocab=teacher_vocab_size())
    once = cfg.model_copy(
        update={"student": cfg.student.model_copy(update={"repeats": 1}), "ablations": ("recurrence",)}
    )
    assert variants(once, teacher_vocab=teacher_vocab_size())[1].student.repeats == 2


def test_an_unknown_ablation_is_refused() -> None:
    cfg = BuildConfig.from_toml(CONFIG).model_copy(update={"ablations": ("nonsense",)})
    with pytest.raises(ValueError, match="unknown ablation"):
        variants(cfg, teacher_vocab=teacher_vocab_size())


PREVIOUS = CONFIG.parent / "previous"


def test_the_0_5_configs_are_the_bottleneck_recipe_with_its_rows_at_equal_bytes() -> None:
    """eibert-0.5.0 and eibert-small-0.5.0: E = H/2 with the saved bytes spent on kept tokens, beside
    `no_bottleneck` (E = H) and `static` at the same estimated bytes, early stopping on."""
    big, small = (BuildConfig.from_toml(CONFIG.parent / name) for name in ("eibert-1.9m.toml", "eibert-1.2m.toml"))
    old_big = BuildConfig.from_toml(PREVIOUS / "eibert-0.4.0.toml")
    assert (big.version, small.version) == ("0.5.0", "0.5.0")
    # The 1.9 MB recipe is exactly 0.4.0's bottleneck row: the same variant, now the shipped one.
    (row,) = [
        v for v in variants(old_big.model_copy(update={"ablations": ("bottleneck",)}), 30522) if v.name != SHIPPED
    ]
    assert (big.student, big.prune, big.distill.model_copy(update={"patience": 0, "min_delta": 0.0})) == (
        row.student, row.prune, row.distill
    )  # fmt: skip
    assert big.ablations == ("no_bottleneck", "static") and small.ablations == ("static",)
    for cfg in (big, small):
        assert cfg.student.embed_dim == cfg.student.hidden // 2 and cfg.distill.patience > 0
        assert cfg.corpus == old_big.corpus and cfg.targets == old_big.targets  # shared cached targets
        target = Student(cfg.student, cfg.prune.vocab_size).estimated_int8_bytes()
        # The small build ran `static` only (its config says why); the `no_bottleneck` row it would train fits too.
        rows = cfg.model_copy(update={"ablations": ("no_bottleneck", "static")})
        _, wide, static = variants(rows, teacher_vocab=teacher_vocab_size())
        assert (wide.name, wide.student.embed_dim, static.student.kind) == (
            "no_bottleneck",
            cfg.student.hidden,
            "static",
        )
        assert wide.prune.vocab_size < cfg.prune.vocab_size
        for v in (wide, static):
            assert Student(v.student, v.prune.vocab_size).estimated_int8_bytes() <= target, v.name
    # The small one spends its bytes the same way: more tokens than 0.4.0-small's 4,500 at the same estimate.
    old_small = BuildConfig.from_toml(PREVIOUS / "eibert-small-0.4.0.toml")
    assert small.prune.vocab_size > old_small.prune.vocab_size
    assert (
        Student(small.student, small.prune.vocab_size).estimated_int8_bytes()
        <= Student(old_small.student, old_small.prune.vocab_size).estimated_int8_bytes()
    )
