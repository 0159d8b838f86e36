"""The student's facts: parameter integration makes the untrained student equal mean pooling of static vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_store.build_config import StudentConfig
from model_store.student import Student, module_bytes


@pytest.mark.parametrize(
    "cfg",
    [
        StudentConfig(embed_dim=48, hidden=48, heads=4, ffn=96, max_length=16),
        StudentConfig(embed_dim=24, hidden=48, heads=4, ffn=96, max_length=16, unique_layers=1, repeats=3),
        StudentConfig(kind="static", embed_dim=48, max_length=16),
    ],
    ids=["plain", "bottleneck+recurrence", "static"],
)
def test_untrained_student_is_mean_pooling_of_static_vectors(cfg: StudentConfig) -> None:
    rng = np.random.default_rng(0)
    vocab = 64
    # Static vectors of rank <= E, so the PCA keeps everything and the identity is exact.
    static = (rng.standard_normal((vocab, cfg.embed_dim)) @ rng.standard_normal((cfg.embed_dim, 384))).astype(
        np.float32
    )
    model = Student(cfg, vocab)
    info = model.init_from_teacher(static)
    assert info["pca_variance_kept"] == pytest.approx(1.0, abs=1e-5)
    ids = torch.tensor([[1, 5, 7, 0], [3, 3, 9, 61]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    with torch.no_grad():
        got = model(ids, mask).numpy()
    for row, (i, m) in enumerate(zip(ids.numpy(), mask.numpy(), strict=True)):
        expected = static[i[m == 1]].mean(axis=0)
        expected /= np.linalg.norm(expected)
        assert float(got[row] @ expected) > 0.9999


def test_a_teacher_narrower_than_the_embedding_still_initialises_exactly() -> None:
    """Your own teacher may be narrower (32) than the student's embedding (48): its components come first and the
    spare columns start as noise the zero head ignores, so the untrained student is still mean pooling."""
    rng = np.random.default_rng(1)
    cfg = StudentConfig(embed_dim=48, hidden=48, heads=4, ffn=96, max_length=16, out_dim=32)
    static = rng.standard_normal((64, 32)).astype(np.float32)
    model = Student(cfg, 64)
    assert model.init_from_teacher(static)["pca_variance_kept"] == pytest.approx(1.0, abs=1e-5)
    assert float(model.tok.weight[:, 32:].abs().max()) > 0  # the spare columns can learn
    ids, mask = torch.tensor([[1, 5, 7, 0]]), torch.tensor([[1, 1, 1, 0]])
    with torch.no_grad():
        got = model(ids, mask).numpy()[0]
    expected = static[[1, 5, 7]].mean(axis=0)
    assert float(got @ (expected / np.linalg.norm(expected))) > 0.9999


def test_padding_does_not_change_the_embedding() -> None:
    model = Student(StudentConfig(embed_dim=32, hidden=32, heads=2, ffn=64, max_length=16), 30).eval()
    with torch.no_grad():
        short = model(torch.tensor([[2, 3, 4]]), torch.ones(1, 3, dtype=torch.long))
        padded = model(torch.tensor([[2, 3, 4, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_byte_estimate_and_module_breakdown_agree() -> None:
    model = Student(StudentConfig(), 5800)
    parts = module_bytes(model)
    assert set(parts) == {"embeddings", "attention", "ffn", "layernorm", "head"}
    assert sum(parts.values()) == model.estimated_int8_bytes()
    assert parts["embeddings"] > parts["attention"]  # at this size the vocabulary dominates (method.md)
