"""Next-basket evaluation protocol on order histories (Li et al., "A Next Basket Recommendation Reality Check",
TOIS 2023): cases, candidates, metrics and the frequency baselines.

Protocol: target = a user's last order, history = every earlier order. Candidates = the user's earlier products
plus the `popular` most popular products, popularity counted over history orders only (never a target). Metrics
are catalogue-wide: a basket item outside the candidates is a miss. `recall_repeat@10` and `recall_new@10` are
recall over the target's repeat items (bought before) and new items, averaged over the users who have any.

Users are split by a hash of (seed, user id) into a tuning share and a report share, so a user's side does not
depend on which other users a file holds; everything that is tuned (TIFU-KNN's grid, the learned ranker) sees
tuning users only.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model_store.data.instacart import DAY_S, Order

POPULAR = 100
TUNE_SHARE = 0.3
SEED = 0
TIME_HALF_LIFE_DAYS = 30.0  # P-TopFreq with time: each purchase weighs 0.5 ** (days ago / 30)


class BasketMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    recall_10: float = Field(serialization_alias="recall@10")
    ndcg_10: float = Field(serialization_alias="ndcg@10")
    phr_10: float = Field(serialization_alias="phr@10")
    recall_20: float = Field(serialization_alias="recall@20")
    ndcg_20: float = Field(serialization_alias="ndcg@20")
    recall_repeat_10: float = Field(serialization_alias="recall_repeat@10")
    recall_new_10: float = Field(serialization_alias="recall_new@10")


@dataclass(frozen=True)
class BasketCase:
    user_id: int
    history: tuple[Order, ...]  # oldest first
    target: Order
    candidates: tuple[int, ...]  # the user's earlier products (first-seen order), then popular ones

    @property
    def now(self) -> float:
        """The target order's time: what the request says its local time is."""
        return self.target.ts


def is_tuning_user(user_id: int, *, seed: int = SEED, share: float = TUNE_SHARE) -> bool:
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def popularity(histories: Sequence[Sequence[Order]]) -> Counter[int]:
    """Order lines per product over the given history orders."""
    return Counter(p for orders in histories for o in orders for p in o.products)


def build_cases(
    orders_by_user: dict[int, list[Order]], *, popular: int = POPULAR, targets_per_user: int = 1, min_history: int = 1
) -> tuple[list[BasketCase], Counter[int]]:
    """One case per user and target order (the last `targets_per_user` orders, newest last), plus popularity.

    Popularity counts every user's history before their *last* order; with `targets_per_user` > 1 (training
    data) an earlier target's own lines are counted too, which a device could know by then only if the server
    saw them: acceptable for tuning data, never used for reported figures (targets_per_user=1)."""
    counts = popularity([orders[:-1] for orders in orders_by_user.values()])
    top = [p for p, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:popular]]
    cases = []
    for user_id, orders in orders_by_user.items():
        for t in range(max(min_history, len(orders) - targets_per_user), len(orders)):
            history = tuple(orders[:t])
            own = dict.fromkeys(p for o in history for p in o.products)
            candidates = tuple(own) + tuple(p for p in top if p not in own)
            cases.append(BasketCase(user_id, history, orders[t], candidates))
    return cases, counts


def _dcg(hits: np.ndarray) -> float:
    return float((hits / np.log2(np.arange(2, len(hits) + 2))).sum())


def case_metrics(ranked: Sequence[int], case: BasketCase) -> dict[str, float | None]:
    """Metrics of one ranked list (best first) for one case; None where a recall's denominator is empty."""
    target = set(case.target.products)
    seen = {p for o in case.history for p in o.products}
    repeat, new = target & seen, target - seen
    out: dict[str, float | None] = {}
    for k in (10, 20):
        top = list(ranked[:k])
        hits = np.array([p in target for p in top], dtype=np.float64)
        ideal = _dcg(np.ones(min(len(target), k)))
        out[f"recall_{k}"] = float(hits.sum()) / len(target)
        out[f"ndcg_{k}"] = _dcg(hits) / ideal
    top10 = set(ranked[:10])
    out["phr_10"] = float(bool(top10 & target))
    out["recall_repeat_10"] = len(top10 & repeat) / len(repeat) if repeat else None
    out["recall_new_10"] = len(top10 & new) / len(new) if new else None
    return out


def mean_metrics(rows: Sequence[dict[str, float | None]]) -> BasketMetrics:
    def avg(key: str) -> float:
        vals = [r[key] for r in rows if r[key] is not None]
        return round(float(np.mean(vals)), 4) if vals else 0.0

    return BasketMetrics(**{k: avg(k) for k in BasketMetrics.model_fields})


Ranker = Callable[[BasketCase], Sequence[int]]


def evaluate(cases: Sequence[BasketCase], rank: Ranker) -> BasketMetrics:
    return mean_metrics([case_metrics(rank(c), c) for c in cases])


def order_by(candidates: Sequence[int], score: dict[int, float], tiebreak: dict[int, float]) -> list[int]:
    """Candidates with a score, best first; ties by `tiebreak` (higher first), then product id."""
    scored = [p for p in candidates if p in score]
    return sorted(scored, key=lambda p: (-score[p], -tiebreak.get(p, 0.0), p))


def p_topfreq(case: BasketCase, counts: Counter[int], *, half_life_days: float | None = None) -> list[int]:
    """The user's own products by purchase count (each purchase weighted by its age with a half-life)."""
    score: dict[int, float] = {}
    for o in case.history:
        w = 1.0 if half_life_days is None else 0.5 ** ((case.now - o.ts) / DAY_S / half_life_days)
        for p in o.products:
            score[p] = score.get(p, 0.0) + w
    return order_by(case.candidates, score, {p: float(c) for p, c in counts.items()})


def g_topfreq(case: BasketCase, counts: Counter[int]) -> list[int]:
    return order_by(case.candidates, {p: float(counts[p]) for p in case.candidates}, {})


def gp_topfreq(case: BasketCase, counts: Counter[int]) -> list[int]:
    """P-TopFreq, then global popularity for the slots the user's own products leave."""
    own = p_topfreq(case, counts)
    return own + [p for p in g_topfreq(case, counts) if p not in set(own)]
