"""The STS evaluator on a fixture whose Spearman is known by hand, and on the real teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model_store.data.stsb import load_sts
from model_store.eval_sts import evaluate_sts, evaluate_sts_file
from tests.conftest import FIXTURES

# Pair i's second sentence sits at this angle (degrees) from its first, so cos = cos(angle).
# Gold scores are 5,4,3,2,1; the cosines rank 1st,2nd,3rd,5th,4th: d^2 = 0+0+0+1+1 = 2,
# rho = 1 - 6*2 / (5*(25-1)) = 0.9, reported x100 -> 90.0.
ANGLES = {"alpha": 0, "beta": 10, "gamma": 20, "delta": 60, "epsilon": 40}


class LookupEncoder:
    """Maps each fixture sentence to a fixed 2-d unit vector; no model involved."""

    name = "lookup"
    dim = 2

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        rows = []
        for t in texts:
            stem, _, _ = t.partition("-")
            angle = 0.0 if t == stem else math.radians(ANGLES[stem])
            base = math.radians(17 * len(stem))  # rotate each pair differently: only relative angles matter
            rows.append([math.cos(base + angle), math.sin(base + angle)])
        return np.asarray(rows, dtype=np.float32)


def test_known_spearman_on_fixture() -> None:
    result = evaluate_sts_file(LookupEncoder(), FIXTURES / "sts_tiny.tsv")
    assert result.pairs == 5
    assert result.spearman == pytest.approx(90.0, abs=1e-6)


def test_perfect_and_reversed_orderings() -> None:
    pairs = load_sts(FIXTURES / "sts_tiny.tsv")
    ANGLES.update(delta=30, epsilon=40)
    try:
        assert evaluate_sts(LookupEncoder(), pairs).spearman == pytest.approx(100.0)
        reversed_pairs = [p.__class__(p.sentence1, p.sentence2, 6.0 - p.score, p.genre) for p in pairs]
        assert evaluate_sts(LookupEncoder(), reversed_pairs).spearman == pytest.approx(-100.0)
    finally:
        ANGLES.update(delta=60, epsilon=40)


def test_needs_two_pairs() -> None:
    pairs = load_sts(FIXTURES / "sts_tiny.tsv")[:1]
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_sts(LookupEncoder(), pairs)
