"""The local ranker on inputs whose right answer is known (orthogonal topics), plus its guarantees."""

from __future__ import annotations

import numpy as np
import pytest

from service.edge.ranker import RankerConfig, score, top_k

DAY = 86400.0


def topics(d: int = 8) -> np.ndarray:
    return np.eye(d, dtype=np.float32)  # topic i = unit vector e_i: cosine 1 within a topic, 0 across


def test_recent_interest_beats_old_interest() -> None:
    e = topics()
    behaviors = np.stack([e[0]] * 3 + [e[1]] * 3)
    ts = np.array([0, 1, 2, 300, 301, 302]) * DAY  # topic 0 a year ago, topic 1 this week
    s = score(behaviors, ts, np.stack([e[0], e[1]]), RankerConfig(half_life=30 * DAY))
    assert s[1] > s[0]
    # Without decay the two interests tie: the ordering above comes from recency alone.
    flat = score(behaviors, ts, np.stack([e[0], e[1]]), RankerConfig(half_life=1e12))
    assert flat[0] == pytest.approx(flat[1], abs=1e-4)


def test_target_attention_finds_a_minority_interest_the_global_vector_misses() -> None:
    e = topics()
    behaviors = np.stack([e[1]] * 9 + [e[2]])  # one behaviour on topic 2 among nine on topic 1
    ts = np.zeros(10)
    cands = np.stack([e[2], e[3]])  # topic 2 (the user did like it once) vs topic 3 (never)
    local = score(behaviors, ts, cands, RankerConfig(local_weight=1.0, top_n=1))
    assert local[0] == pytest.approx(1.0) and local[1] == pytest.approx(0.0)
    glob = score(behaviors, ts, cands, RankerConfig(local_weight=0.0))
    assert glob[0] == pytest.approx(1 / np.sqrt(82), rel=1e-5)  # g = (9 e1 + e2) / sqrt(82)
    assert score(behaviors, ts, cands)[0] > score(behaviors, ts, cands)[1]


def test_denoising_keeps_only_relevant_behaviours() -> None:
    e = topics()
    half = (e[0] + e[4]) / np.sqrt(2)  # half relevant to the candidate e[0]
    behaviors = np.stack([e[0], half, e[5], e[6], e[7]])
    cand = e[0][None, :]
    cfg = dict(local_weight=1.0, temperature=10.0)  # flat softmax: only top_n decides who counts
    kept_one = score(behaviors, np.zeros(5), cand, RankerConfig(top_n=1, **cfg))[0]
    kept_two = score(behaviors, np.zeros(5), cand, RankerConfig(top_n=2, **cfg))[0]
    kept_all = score(behaviors, np.zeros(5), cand, RankerConfig(top_n=5, **cfg))[0]
    assert kept_one == pytest.approx(1.0)
    assert kept_one > kept_two > kept_all  # every unrelated behaviour let in dilutes the interest


def test_prior_reorders_only_when_given_and_content_still_counts() -> None:
    e = topics()
    behaviors, ts = np.stack([e[0]]), np.zeros(1)
    cands = np.stack([e[0], e[1], e[2]])
    assert list(top_k(score(behaviors, ts, cands), 3)) == [0, 1, 2]
    prior = np.array([0.0, 0.0, 10.0])
    s = score(behaviors, ts, cands, RankerConfig(prior_weight=1.0), prior=prior)
    assert top_k(s, 1)[0] == 2  # a strong prior wins
    s = score(behaviors, ts, cands, RankerConfig(prior_weight=0.5), prior=prior)
    assert top_k(s, 1)[0] == 0  # a weaker one does not beat a perfect content match


def test_deterministic_and_independent_of_behaviour_order() -> None:
    rng = np.random.default_rng(0)
    b = rng.standard_normal((30, 16)).astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    c = rng.standard_normal((50, 16)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    ts = rng.uniform(0, 1e8, 30)
    first = score(b, ts, c)
    assert np.array_equal(first, score(b, ts, c))
    perm = rng.permutation(30)
    # Same scores up to float32 rounding: embeddings are float32, so sums taken in another order may differ in the
    # last bits (seen: 3e-8 on a 0.28 score, depending on the BLAS path); a real order effect would be ~1e-2.
    np.testing.assert_allclose(score(b[perm], ts[perm], c), first, atol=1e-6)


def test_ties_keep_input_order_and_k_bounds() -> None:
    assert list(top_k(np.array([1.0, 2.0, 2.0, 0.5, 2.0]), 4)) == [1, 2, 4, 0]
    assert list(top_k(np.array([1.0, 2.0]), 10)) == [1, 0]
    with pytest.raises(ValueError):
        top_k(np.array([1.0]), -1)


def test_cold_start_and_zero_weight_kinds_give_zero_content() -> None:
    e = topics()
    assert np.array_equal(score(np.zeros((0, 8)), np.zeros(0), np.stack([e[0], e[1]])), [0.0, 0.0])
    cfg = RankerConfig(kind_weights={"skip": 0.0})
    s = score(np.stack([e[0], e[1]]), np.zeros(2), np.stack([e[0], e[1]]), cfg, kinds=["skip", "click"])
    assert s[1] > s[0]  # the skipped behaviour does not count
    all_skipped = score(np.stack([e[0]]), np.zeros(1), np.stack([e[0], e[1]]), cfg, kinds=["skip"])
    assert np.array_equal(all_skipped, [0.0, 0.0])


def test_very_old_behaviours_with_a_short_half_life_stay_finite() -> None:
    e = topics()
    behaviors = np.stack([e[0], e[1], e[2]])
    ts = np.array([0.0, 1e9, 2e9])  # decades apart: linear weights would underflow to exactly 0
    s = score(behaviors, ts, np.stack([e[0], e[2]]), RankerConfig(half_life=1.0))
    assert np.isfinite(s).all() and s[1] > s[0]


@pytest.mark.parametrize(
    "kwargs",
    [{"half_life": 0}, {"top_n": 0}, {"temperature": 0}, {"local_weight": 1.5}, {"prior_weight": -1},
     {"kind_weights": {"x": -1.0}}],
)  # fmt: skip
def test_bad_config_is_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RankerConfig(**kwargs)


def test_shape_mismatches_are_refused() -> None:
    e = topics()
    with pytest.raises(ValueError, match="dim"):
        score(np.ones((2, 4)), np.zeros(2), e)
    with pytest.raises(ValueError, match="timestamps"):
        score(e[:2], np.zeros(3), e)
    with pytest.raises(ValueError, match="priors"):
        score(e[:2], np.zeros(2), e, prior=np.zeros(3))
