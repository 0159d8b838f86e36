"""The next-basket protocol: candidates, popularity without targets, metrics on hand-checked lists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from model_store.basket_protocol import build_cases, case_metrics, g_topfreq, is_tuning_user, p_topfreq
from model_store.data.instacart import Order, load_orders
from tests.model_store.basket_data import TARGET_ONLY, write_basket_files


def _order(n: int, products: tuple[int, ...], day: float) -> Order:
    return Order(order_id=n, user_id=1, number=n, dow=0, hour=9, ts=day * 86400.0, products=products)


def test_popularity_never_counts_a_target_order(tmp_path: Path) -> None:
    orders = load_orders(write_basket_files(tmp_path)[0])
    cases, counts = build_cases(orders, popular=100)
    assert counts[TARGET_ONLY] == 0  # bought only in last orders
    assert all(TARGET_ONLY not in c.candidates for c in cases)  # so it is a miss for every method
    for c in cases:
        own = {p for o in c.history for p in o.products}
        assert set(c.candidates[: len(own)]) == own


def test_metrics_of_a_known_list() -> None:
    history = (_order(1, (1, 2), 0), _order(2, (1, 3), 7))
    case = build_cases({1: [*history, _order(3, (1, 4, 5), 14)]}, popular=0)[0][0]
    m = case_metrics([4, 2, 1, 9], case)  # hits at ranks 1 and 3 of a 3-item basket; 4 is new, 1 a repeat
    assert m["recall_10"] == pytest.approx(2 / 3)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg_10"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert m["phr_10"] == 1.0 and m["recall_repeat_10"] == 1.0 and m["recall_new_10"] == pytest.approx(1 / 2)


def test_frequency_baselines() -> None:
    history = (_order(1, (1, 2), 0), _order(2, (1, 3), 7), _order(3, (3,), 13))
    cases, counts = build_cases({1: [*history, _order(4, (1,), 14)]}, popular=0)
    assert p_topfreq(cases[0], counts)[:2] in ([1, 3], [3, 1])
    assert p_topfreq(cases[0], counts, half_life_days=1.0)[0] == 3  # the newest purchase wins with a short memory
    assert g_topfreq(cases[0], counts)[0] in (1, 3)


def test_the_split_is_per_user_and_stable() -> None:
    flags = [is_tuning_user(u) for u in range(1000)]
    assert 0.25 < sum(flags) / 1000 < 0.35
    assert flags == [is_tuning_user(u) for u in range(1000)]
    assert flags != [is_tuning_user(u, seed=1) for u in range(1000)]
