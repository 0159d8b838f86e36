"""Position-bias learning on logs whose truth is known: a ranker's own slates, clicked through a known curve."""

from __future__ import annotations

import numpy as np
import pytest

from service.edge.position_bias import (
    MAX_FEATURE_CELLS,
    MAX_IMPRESSIONS,
    MAX_POSITIONS,
    ExaminationPrior,
    ImpressionLog,
    click_rate_curve,
    fit_naive,
    fit_pbm,
    ipw_mean,
    pool_curve,
)

SLOTS = 10
DIM = 6
W_TRUE = np.array([1.5, -1.0, 0.8, 0.0, 0.5, -0.7])
B_TRUE = -1.2
STEEP = 1.0 / (1.0 + np.arange(SLOTS)) ** 1.0  # a typical user
FLAT = 1.0 / (1.0 + np.arange(SLOTS)) ** 0.2  # a deep scroller
SKIM = np.where(np.arange(SLOTS) < 3, 1.0 / (1.0 + np.arange(SLOTS)) ** 0.5, 0.0)  # never past slot 2


def ranked_log(curve: np.ndarray, sessions: int, seed: int) -> ImpressionLog:
    """A ranker that knows relevance up to noise shows its best first; the user clicks through `curve`."""
    rng = np.random.default_rng(seed)
    pos, clicks, feats = [], [], []
    for _ in range(sessions):
        x = rng.normal(size=(2 * SLOTS, DIM))
        gamma = 1.0 / (1.0 + np.exp(-(x @ W_TRUE + B_TRUE)))
        shown = np.argsort(-(gamma + rng.normal(scale=0.1, size=gamma.shape)))[:SLOTS]
        examined = rng.random(SLOTS) < curve
        clicked = examined & (rng.random(SLOTS) < gamma[shown])
        pos.extend(range(SLOTS))
        clicks.extend(clicked.astype(float))
        feats.extend(x[shown])
    return ImpressionLog.of(np.array(pos), np.array(clicks), np.array(feats))


def error(curve: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(curve[1:] - truth[1:]).mean())


def test_em_recovers_a_known_curve_where_the_click_rate_curve_does_not() -> None:
    log = ranked_log(STEEP, sessions=800, seed=0)
    fit = fit_pbm(log, slots=SLOTS, max_iter=300)
    assert fit.curve[0] == 1.0
    assert error(fit.curve, STEEP) < 0.03
    # The naive estimate (click rate per slot) confounds "shown lower" with "less relevant": the ranker put its
    # best items first, so the rate falls faster than attention does. It fails the same check.
    assert error(click_rate_curve(log, SLOTS), STEEP) > 0.06
    # and the relevance model points where the truth does
    assert np.corrcoef(fit.relevance.weights, W_TRUE)[0, 1] > 0.95


def test_the_corrected_relevance_is_calibrated_where_the_naive_one_is_not() -> None:
    log = ranked_log(STEEP, sessions=800, seed=1)
    rng = np.random.default_rng(9)
    x = rng.normal(size=(5000, DIM))
    truth = 1.0 / (1.0 + np.exp(-(x @ W_TRUE + B_TRUE)))
    corrected = fit_pbm(log, slots=SLOTS, max_iter=300).relevance.relevance(x)
    naive = fit_naive(log).relevance(x)
    assert abs(corrected.mean() - truth.mean()) < 0.03
    assert naive.mean() < truth.mean() - 0.1  # unclicked-but-unseen read as irrelevant: relevance underestimated


def test_a_personal_curve_beats_the_fleet_curve_for_users_unlike_the_fleet() -> None:
    users = [(STEEP, 0), (FLAT, 1), (SKIM, 2), (STEEP, 3), (FLAT, 4), (SKIM, 5)]
    logs = [(truth, ranked_log(truth, sessions=150, seed=seed)) for truth, seed in users]
    fleet = pool_curve([fit_pbm(log, slots=SLOTS, max_iter=200).stats for _, log in logs], SLOTS)
    prior = ExaminationPrior(fleet, strength=5.0)
    personal, shared = [], []
    for truth, log in logs:
        personal.append(error(fit_pbm(log, slots=SLOTS, prior=prior, max_iter=200).curve, truth))
        shared.append(error(fleet, truth))
    assert np.mean(personal) < 0.5 * np.mean(shared)
    for i, (truth, _) in enumerate(logs):
        if truth is not STEEP:  # the deep scrollers and the skimmers are far from the fleet's average user
            assert personal[i] < shared[i], i


def test_the_prior_answers_for_slots_a_user_has_no_data_on() -> None:
    log = ranked_log(STEEP, sessions=50, seed=3)
    cut = log.positions < 4  # this user was only ever shown four slots
    short = ImpressionLog.of(log.positions[cut], log.clicks[cut], log.features[cut])
    prior = ExaminationPrior(FLAT, strength=5.0)
    fit = fit_pbm(short, slots=SLOTS, prior=prior, max_iter=100)
    np.testing.assert_allclose(fit.curve[4:], FLAT[4:], atol=1e-4)
    assert fit.stats.shown[4:].sum() == 0


def test_the_fit_is_warm_startable_and_bounded() -> None:
    log = ranked_log(STEEP, sessions=200, seed=4)
    first = fit_pbm(log, slots=SLOTS, max_iter=5)
    assert first.iterations == 5 and not first.converged
    again = fit_pbm(log, slots=SLOTS, init=first, max_iter=300)
    cold = fit_pbm(log, slots=SLOTS, max_iter=300)
    assert again.converged and cold.converged
    np.testing.assert_allclose(again.curve, cold.curve, atol=0.02)
    assert again.log_likelihood == pytest.approx(cold.log_likelihood, abs=1e-3)


def test_a_fixed_curve_is_used_as_given() -> None:
    log = ranked_log(STEEP, sessions=100, seed=5)
    fit = fit_pbm(log, slots=SLOTS, fixed_curve=STEEP, max_iter=50)
    np.testing.assert_array_equal(fit.curve, STEEP)


def test_ipw_counts_a_click_at_a_slot_as_one_over_its_examination() -> None:
    rng = np.random.default_rng(6)
    slots = rng.integers(0, SLOTS, size=200_000)
    relevant = rng.random(slots.size) < 0.3
    clicks = relevant & (rng.random(slots.size) < STEEP[slots])
    assert ipw_mean(clicks, STEEP[slots]) == pytest.approx(0.3, abs=0.01)
    assert clicks.mean() < 0.15  # what a reader of raw clicks would say
    # an off-policy value: the log placed items uniformly over the slots; a policy that always uses slot 0
    # would get relevance x examination(0) = 0.3 clicks per impression
    uniform = np.full(slots.size, 1.0 / SLOTS)
    assert ipw_mean(clicks, uniform, (slots == 0).astype(float)) == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    ("positions", "clicks", "features", "message"),
    [
        ([0, 1, MAX_POSITIONS], [0, 1, 0], np.zeros((3, 2)), "positions must be in"),
        ([0, -1], [0, 1], np.zeros((2, 2)), "positions must be in"),
        ([0, 1.5], [0, 1], np.zeros((2, 2)), "whole numbers"),
        ([0, np.nan], [0, 1], np.zeros((2, 2)), "whole numbers"),
        ([0, 1], [0, np.nan], np.zeros((2, 2)), "clicks must be 0 or 1"),
        ([0, 1], [0, 2], np.zeros((2, 2)), "clicks must be 0 or 1"),
        ([0, 1], [0, 1], np.array([[0.0, np.nan], [0.0, 0.0]]), "finite"),
        ([0, 1], [0, 1], np.array([[0.0, np.inf], [0.0, 0.0]]), "finite"),
        ([0, 1], [0], np.zeros((2, 2)), "2 positions but 1 clicks"),
        ([0, 1], [0, 1], np.zeros((3, 2)), "features must be"),
        ([[0, 1]], [[0, 1]], np.zeros((2, 2)), "1-d"),
        (["a", "b"], [0, 1], np.zeros((2, 2)), "numbers"),
        ([0, 1], [0, 1], [["x", "y"], ["z", "w"]], "numbers"),
        ([0, 1], [0, 1], np.zeros((2, 129)), "at most 128"),
    ],
)
def test_hostile_logs_are_refused_with_the_reason(positions, clicks, features, message) -> None:
    with pytest.raises(ValueError, match=message):
        ImpressionLog.of(positions, clicks, features)


def test_a_log_beyond_the_row_or_value_cap_is_refused_before_any_work() -> None:
    n = MAX_IMPRESSIONS + 1
    with pytest.raises(ValueError, match="at most"):
        ImpressionLog.of(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros((n, 1)))
    n = MAX_FEATURE_CELLS // 100 + 1
    with pytest.raises(ValueError, match="values per fit"):
        ImpressionLog.of(np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros((n, 100), dtype=np.float32))


def test_bad_fit_arguments_are_refused() -> None:
    log = ranked_log(STEEP, sessions=5, seed=7)
    with pytest.raises(ValueError, match="slots"):
        fit_pbm(log, slots=3)  # the log has positions up to 9
    with pytest.raises(ValueError, match="max_iter"):
        fit_pbm(log, max_iter=10**6)
    with pytest.raises(ValueError, match="prior curve"):
        ExaminationPrior(np.array([1.0, np.nan]), 5.0)
    with pytest.raises(ValueError, match="prior curve"):
        ExaminationPrior(np.array([1.0, 1.5]), 5.0)
    with pytest.raises(ValueError, match="strength"):
        ExaminationPrior(STEEP, -1.0)
    with pytest.raises(ValueError, match="covers 4 slots"):
        fit_pbm(log, prior=ExaminationPrior(STEEP[:4], 5.0))
    with pytest.raises(ValueError, match="not both"):
        fit_pbm(log, prior=ExaminationPrior(STEEP, 5.0), fixed_curve=STEEP)
    with pytest.raises(ValueError, match="l2"):
        fit_naive(log, l2=float("nan"))
    with pytest.raises(ValueError, match="propensities"):
        ipw_mean([1.0, 0.0], [0.5, 0.0])
    with pytest.raises(ValueError, match="finite"):
        ipw_mean([1.0, np.nan], [0.5, 0.5])


def test_an_empty_log_fits_to_the_prior() -> None:
    empty = ImpressionLog.of(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 3)))
    fit = fit_pbm(empty, slots=SLOTS, prior=ExaminationPrior(FLAT, 5.0), max_iter=5)
    np.testing.assert_allclose(fit.curve, FLAT, atol=1e-4)
    assert np.isfinite(fit.relevance.weights).all()


def test_the_slot_bound_is_the_rank_apis() -> None:
    from service.edge.schemas import MAX_POSITION

    assert MAX_POSITIONS == MAX_POSITION  # a position /v1/rank accepts is one a curve covers, and no more
