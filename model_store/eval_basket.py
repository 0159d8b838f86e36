"""`eibert eval basket`: the next-basket protocol of `basket_protocol` for every method, on users not tuned on.

Methods: `ranker` (the learned ranker, the bundle's `ranker.json` or `--ranker FILE`), `ranker_v0` (the content
ranker every bundle had before, on text alone), P-TopFreq (own products by count), P-TopFreq with time (each
purchase weighted 0.5 ** (days ago / 30)), GP-TopFreq (own products, then popular ones), G-TopFreq
(popularity) and TIFU-KNN (its grid searched on the tuning users). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from model_store.basket_protocol import (
    TIME_HALF_LIFE_DAYS,
    BasketCase,
    BasketMetrics,
    build_cases,
    evaluate,
    g_topfreq,
    gp_topfreq,
    is_tuning_user,
    p_topfreq,
)
from model_store.basket_requests import ProductEmbeddings, features, order_scores, rank_inputs, rank_v0
from model_store.data.instacart import load_orders, load_products
from model_store.encoders import Encoder
from model_store.tifuknn import GRID, TifuConfig, TifuKnn
from service.edge.learned_ranker import LearnedRanker, load_learned

log = logging.getLogger(__name__)


def tune_tifuknn(cases: list[BasketCase], tuning: list[BasketCase]) -> tuple[TifuConfig, float]:
    """The grid point with the best NDCG@10 on the tuning users' cases (neighbours from every user)."""
    best: tuple[TifuConfig, float] | None = None
    for config in GRID:
        ndcg = evaluate(tuning, TifuKnn(cases, config).rank).ndcg_10
        log.info("tifuknn %s: tuning ndcg@10 %.4f", config, ndcg)
        if best is None or ndcg > best[1]:
            best = (config, ndcg)
    assert best is not None
    return best


def new_items_only(case: BasketCase, scores: np.ndarray) -> list[int]:
    seen = {p for o in case.history for p in o.products}
    return [p for p in order_scores(case, scores) if p not in seen]


def evaluate_basket(
    encoder: Encoder, orders_path: str | Path, products_path: str | Path, learned: LearnedRanker | None, *, seed: int
) -> dict[str, Any]:
    orders = load_orders(orders_path)
    products = load_products(products_path)
    cases, counts = build_cases(orders)
    report = [c for c in cases if not is_tuning_user(c.user_id, seed=seed)]
    tuning = [c for c in cases if is_tuning_user(c.user_id, seed=seed)]
    if not report or not tuning:
        raise ValueError(f"{orders_path}: {len(report)} report and {len(tuning)} tuning users; need both")
    emb = ProductEmbeddings(encoder, products, [p for c in cases for p in c.candidates])
    tifu_config, tifu_tuning = tune_tifuknn(cases, tuning)
    tifu = TifuKnn(cases, tifu_config)
    methods: dict[str, BasketMetrics] = {}
    diagnostics: dict[str, BasketMetrics] = {}
    if learned is not None:
        scores = {id(c): learned.score_features(features(rank_inputs(c, emb, counts), learned.config)) for c in report}
        methods["ranker"] = evaluate(report, lambda c: order_scores(c, scores[id(c)]))
        # the ceiling of recall_new@10 on this protocol: all ten slots to the ranker's best *new* candidates
        diagnostics["ranker_new_items_only"] = evaluate(report, lambda c: new_items_only(c, scores[id(c)]))
    methods["p_topfreq"] = evaluate(report, lambda c: p_topfreq(c, counts))
    methods["p_topfreq_time"] = evaluate(report, lambda c: p_topfreq(c, counts, half_life_days=TIME_HALF_LIFE_DAYS))
    methods["gp_topfreq"] = evaluate(report, lambda c: gp_topfreq(c, counts))
    methods["g_topfreq"] = evaluate(report, lambda c: g_topfreq(c, counts))
    methods["tifuknn"] = evaluate(report, tifu.rank)
    methods["ranker_v0"] = evaluate(report, lambda c: rank_v0(c, rank_inputs(c, emb, counts)))
    return {
        "encoder": encoder.name,
        "users": len(report),
        "tuning_users": len(tuning),
        "seed": seed,
        "tifuknn": {**tifu_config.__dict__, "tuning_ndcg@10": tifu_tuning},
        "methods": {name: m.model_dump(by_alias=True) for name, m in methods.items()},
        "diagnostics": {name: m.model_dump(by_alias=True) for name, m in diagnostics.items()},
    }


def run_eval_basket(args: argparse.Namespace) -> int:
    """`eibert eval basket --bundle teacher|DIR --orders F --products F [--ranker F]`: one JSON line."""
    from model_store.encoders import load_encoder

    learned = load_learned(args.bundle, args.ranker)
    encoder = load_encoder(args.bundle, threads=args.threads)
    result = evaluate_basket(encoder, args.orders, args.products, learned, seed=args.seed)
    print(json.dumps({"bundle": str(args.bundle), **result}))
    return 0
