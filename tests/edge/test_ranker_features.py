"""The learned ranker's features on hand-made logs whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from service.edge.ranker_features import DAY_S, FEATURES, INDEX, Clock, compute, item_keys, local_hour_dow

D = 8
MONDAY_9H = 17168 * DAY_S + 9 * 3600  # 2017-01-02, a Monday, 09:00 UTC


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=D)
    return v / np.linalg.norm(v)


MILK, BREAD, YOGURT, CHEESE = (_unit(i) for i in range(4))


def _log(events: list[tuple[str, np.ndarray, float]], kind: str = "purchase"):
    keys = [f"i:{k}" for k, _, _ in events]
    emb = np.stack([e for _, e, _ in events]).astype(np.float32)
    ts = np.array([t for _, _, t in events])
    return emb, ts, [kind] * len(events), keys


def test_local_time_is_monday_zero() -> None:
    hour, dow = local_hour_dow(np.array([MONDAY_9H, MONDAY_9H + 6 * DAY_S]), 0.0)
    assert hour.tolist() == [9.0, 9.0] and dow.tolist() == [0, 6]
    hour, dow = local_hour_dow(np.array([MONDAY_9H]), -10 * 3600.0)  # UTC-10: still Sunday 23:00
    assert hour.tolist() == [23.0] and dow.tolist() == [6]


def test_repeat_cycle_phase_and_time_of_day() -> None:
    # milk every 7 days at 09:00, bread once; today is 7 days after the last milk, again at 09:00
    milk = [("milk", MILK, MONDAY_9H + k * 7 * DAY_S) for k in range(4)]
    emb, ts, kinds, keys = _log([*milk, ("bread", BREAD, MONDAY_9H + 20 * DAY_S)])
    now = MONDAY_9H + 28 * DAY_S
    cand = np.stack([MILK, BREAD, CHEESE]).astype(np.float32)
    x = compute(emb, ts, kinds, keys, cand, ["i:milk", "i:bread", "i:cheese"], Clock(now=now))
    milk_x, bread_x, cheese_x = x
    assert milk_x[INDEX["seen"]] == 1 and cheese_x[INDEX["seen"]] == 0
    assert milk_x[INDEX["log_count"]] == pytest.approx(np.log1p(4))
    assert milk_x[INDEX["has_cycle"]] == 1 and bread_x[INDEX["has_cycle"]] == 0
    assert milk_x[INDEX["log_phase"]] == pytest.approx(0.0)  # exactly one cycle since the last milk: due
    assert milk_x[INDEX["due"]] == pytest.approx(1.0)
    assert milk_x[INDEX["cycle_cv"]] == pytest.approx(0.0)  # perfectly regular
    assert milk_x[INDEX["item_hour"]] == pytest.approx(1.0)  # always bought at this hour
    assert milk_x[INDEX["item_dow"]] == pytest.approx(1.0)  # always on this weekday
    assert milk_x[INDEX["share"]] == pytest.approx(4 / 5)  # in 4 of 5 sessions
    assert milk_x[INDEX["intensity_3d"]] < milk_x[INDEX["intensity_240d"]]  # older events count more slowly
    assert (cheese_x[: INDEX["item_dow"] + 1] == 0).all()  # a new item has no repeat features
    assert x[0, INDEX["has_clock"]] == 1.0


def test_new_items_borrow_the_cycles_of_related_behaviours() -> None:
    yogurt_like = YOGURT * 0.95 + CHEESE * 0.05
    yogurt_like /= np.linalg.norm(yogurt_like)
    yogurt = [("yogurt", YOGURT, MONDAY_9H + k * 7 * DAY_S) for k in range(4)]
    emb, ts, kinds, keys = _log([*yogurt, ("bread", BREAD, MONDAY_9H)])
    cand = np.stack([yogurt_like, BREAD * 0 + _unit(9)]).astype(np.float32)
    x = compute(emb, ts, kinds, keys, cand, ["i:new-yogurt", "i:unrelated"], Clock(now=MONDAY_9H + 28 * DAY_S))
    assert x[0, INDEX["seen"]] == 0
    assert x[0, INDEX["related_due"]] > 0.9  # its nearest behaviour (yogurt) is due today
    assert x[0, INDEX["max_sim"]] > x[1, INDEX["max_sim"]]


def test_an_items_own_behaviours_are_not_its_related_ones() -> None:
    emb, ts, kinds, keys = _log([("milk", MILK, MONDAY_9H), ("milk", MILK, MONDAY_9H + 7 * DAY_S)])
    x = compute(emb, ts, kinds, keys, MILK[None].astype(np.float32), ["i:milk"], Clock(now=MONDAY_9H + 9 * DAY_S))
    assert x[0, INDEX["max_sim"]] == 0.0 and x[0, INDEX["related_due"]] == 0.0  # nothing else to relate to


def test_items_without_ids_match_by_text_and_impressions_are_not_interest() -> None:
    keys = item_keys([None, None], ["milk 1l", "milk 1l"])
    emb = np.stack([MILK, MILK]).astype(np.float32)
    ts = np.array([MONDAY_9H, MONDAY_9H + DAY_S])
    cand_keys = item_keys([None], ["milk 1l"])
    x = compute(emb, ts, ["view", "view"], keys, MILK[None].astype(np.float32), cand_keys, Clock())
    assert x[0, INDEX["log_count"]] == pytest.approx(np.log1p(2))
    x = compute(emb, ts, ["impression", "impression"], keys, MILK[None].astype(np.float32), cand_keys, Clock())
    assert (x == 0).all()  # shown, not chosen: no interest at all


def test_without_a_clock_time_of_day_is_off() -> None:
    emb, ts, kinds, keys = _log([("milk", MILK, MONDAY_9H), ("milk", MILK, MONDAY_9H + 7 * DAY_S)])
    x = compute(emb, ts, kinds, keys, MILK[None].astype(np.float32), ["i:milk"], Clock())
    assert x[0, INDEX["has_clock"]] == 0 and x[0, INDEX["item_hour"]] == 0 and x[0, INDEX["item_dow"]] == 0


def test_prior_is_standardised_and_every_feature_finite_on_extremes() -> None:
    emb, ts, kinds, keys = _log([("milk", MILK, 0.0), ("bread", BREAD, 9.9e10)])
    cand = np.stack([MILK, BREAD, CHEESE]).astype(np.float32)
    prior = np.array([-1e9, 0.0, 1e9])
    x = compute(
        emb, ts, kinds, keys, cand, ["i:milk", "i:bread", "i:x"], Clock(now=9.9e10, utc_offset_s=-50400.0), prior
    )
    assert np.isfinite(x).all()
    assert x[:, INDEX["prior"]].mean() == pytest.approx(0.0) and x[0, INDEX["has_prior"]] == 1.0
    assert x.shape == (3, len(FEATURES))
