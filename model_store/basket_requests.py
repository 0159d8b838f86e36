"""A basket case as the device's `/v1/rank` would see it: behaviours, candidates, clock and prior.

Behaviours are the user's most recent `max_behaviors` purchase lines (one per product and order, each with the
order's time and the product id), candidates carry their product id and log popularity as the server's recall
prior, and the clock is the target order's local time. Embeddings come from one encoder pass over every
product text the file mentions (`ProductEmbeddings`), as the edge's cache would hold them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model_store.basket_protocol import BasketCase
from model_store.data.instacart import Product
from model_store.encoders import Encoder
from service.edge import ranker, ranker_features
from service.edge.schemas import MAX_BEHAVIORS

log = logging.getLogger(__name__)


class ProductEmbeddings:
    def __init__(self, encoder: Encoder, products: dict[int, Product], ids: Sequence[int]) -> None:
        self.ids = sorted(set(ids))
        self.row = {p: i for i, p in enumerate(self.ids)}
        log.info("encoding %d product texts with %s", len(self.ids), encoder.name)
        self.matrix = encoder.encode([products[p].text for p in self.ids])

    def __getitem__(self, ids: Sequence[int]) -> np.ndarray:
        return self.matrix[[self.row[p] for p in ids]]


@dataclass(frozen=True)
class RankInputs:
    behaviors: np.ndarray  # (n, d)
    ts: np.ndarray  # (n,)
    kinds: list[str]
    behavior_keys: list[str]
    candidates: np.ndarray  # (m, d)
    candidate_keys: list[str]
    clock: ranker_features.Clock
    prior: np.ndarray  # (m,) log(1 + popularity): the server's recall score


def rank_inputs(
    case: BasketCase, emb: ProductEmbeddings, counts: Counter[int], max_behaviors: int = MAX_BEHAVIORS
) -> RankInputs:
    lines = [(o.ts, p) for o in case.history for p in o.products][-max_behaviors:]
    b_ids = [p for _, p in lines]
    return RankInputs(
        behaviors=emb[b_ids],
        ts=np.array([t for t, _ in lines], dtype=np.float64),
        kinds=["purchase"] * len(lines),
        behavior_keys=[f"i:{p}" for p in b_ids],
        candidates=emb[case.candidates],
        candidate_keys=[f"i:{p}" for p in case.candidates],
        clock=ranker_features.Clock(now=case.now),
        prior=np.log1p(np.array([counts[p] for p in case.candidates], dtype=np.float64)),
    )


def features(inputs: RankInputs, config: ranker.RankerConfig | None = None) -> np.ndarray:
    return ranker_features.compute(
        inputs.behaviors,
        inputs.ts,
        inputs.kinds,
        inputs.behavior_keys,
        inputs.candidates,
        inputs.candidate_keys,
        inputs.clock,
        inputs.prior,
        config,
    )


def order_scores(case: BasketCase, scores: np.ndarray) -> list[int]:
    """Candidates best first; equal scores keep candidate order (the user's own products first)."""
    return [case.candidates[i] for i in ranker.top_k(scores, len(case.candidates))]


def rank_v0(case: BasketCase, inputs: RankInputs) -> list[int]:
    """Today's ranker on text alone (its prior blend is worse here: the issue's 0.156 vs 0.302)."""
    return order_scores(case, ranker.score(inputs.behaviors, inputs.ts, inputs.candidates))
