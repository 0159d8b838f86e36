"""STS evaluation: Spearman x 100 between cosine similarity of the two embeddings and the gold score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel

from model_store.data.stsb import StsPair, load_sts
from model_store.encoders import Encoder


class StsResult(BaseModel):
    spearman: float
    pairs: int


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties), via scipy."""
    from scipy.stats import spearmanr

    rho = spearmanr(a, b).statistic
    return float(rho)


def cosine_scores(encoder: Encoder, pairs: list[StsPair]) -> np.ndarray:
    # Encode each distinct sentence once; STS-B repeats sentences across pairs.
    texts = sorted({p.sentence1 for p in pairs} | {p.sentence2 for p in pairs})
    index = {t: i for i, t in enumerate(texts)}
    emb = encoder.encode(texts)
    a = emb[[index[p.sentence1] for p in pairs]]
    b = emb[[index[p.sentence2] for p in pairs]]
    return np.einsum("ij,ij->i", a, b)


def evaluate_sts(encoder: Encoder, pairs: list[StsPair]) -> StsResult:
    if len(pairs) < 2:
        raise ValueError("Spearman needs at least 2 pairs")
    cos = cosine_scores(encoder, pairs)
    gold = np.array([p.score for p in pairs])
    return StsResult(spearman=round(100.0 * spearman(cos, gold), 4), pairs=len(pairs))


def evaluate_sts_file(encoder: Encoder, path: str | Path) -> StsResult:
    return evaluate_sts(encoder, load_sts(path))
