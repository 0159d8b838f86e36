"""One request's scores, by whichever ranker the serving bundle has: shared by `/v1/rank` and the simulated
devices that run the edge runtime in process, so both rank exactly alike."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.edge import ranker
from service.edge.learned_ranker import LearnedRanker
from service.edge.ranker_features import Clock, item_keys


def rank_scores(
    learned: LearnedRanker | None,
    config: ranker.RankerConfig,
    behaviors: np.ndarray,
    candidates: np.ndarray,
    *,
    ts: Sequence[float],
    kinds: Sequence[str],
    behavior_ids: Sequence[str | None],
    behavior_texts: Sequence[str],
    candidate_ids: Sequence[str | None],
    candidate_texts: Sequence[str],
    clock: Clock,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """(m,) scores: the bundle's learned ranker (`ranker.json`) if it ships one, else the content ranker."""
    ts_arr = np.asarray(ts, dtype=np.float64)
    if learned is None:
        return ranker.score(behaviors, ts_arr, candidates, config, kinds=list(kinds), prior=prior)
    return learned.score(
        behaviors,
        ts_arr,
        list(kinds),
        item_keys(behavior_ids, behavior_texts),
        candidates,
        item_keys(candidate_ids, candidate_texts),
        clock,
        prior,
    )
