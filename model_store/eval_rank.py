"""MovieLens next-item ranking (method.md): HR@10 and NDCG@10 for the edge ranker and for popularity.

Protocol: item text = title + genres + the item's tags. Every user with at least 5 ratings >= 4.0, ordered by
time (ties by movie id): history = those positives except the last, target = the last; candidates = target +
99 movies the user never rated, sampled with a seed derived from (seed, user id), so a user's candidates do
not depend on which other users are in the file. Popularity = number of ratings in the file, not counting the
held-out target ratings.

The ranker is `service.edge.ranker` (what the edge runs) on the encoder's embeddings of the last
`max_behaviors` history items, scored two ways: `ranker` re-ranks the candidates with log(1 + popularity) as
their prior (what a device gets when the server's recall sends candidates with a popularity score), and
`ranker_content_only` uses the embeddings alone. Both are reported because only the first beats popularity
on this protocol: the 99 random unrated movies are mostly obscure, and text similarity alone cannot tell
that the next movie a user rates is usually a popular one.

Ties (popularity has many) are scored by their expectation under a random order of tied items, so neither
method gains from where the target happens to sit in the candidate list.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model_store.data.movielens import Rating, item_texts, load_movies, load_ratings, load_tags
from model_store.encoders import Encoder
from service.edge.learned_ranker import LearnedRanker, load_learned
from service.edge.ranker import RankerConfig, score
from service.edge.ranker_features import Clock

log = logging.getLogger(__name__)

K = 10
POSITIVE = 4.0
MIN_POSITIVES = 5
NEGATIVES = 99
SEED = 0
MAX_BEHAVIORS = 50  # what a device would send in one /v1/rank request


class TopKMetrics(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    hr: float = Field(serialization_alias="hr@10")
    ndcg: float = Field(serialization_alias="ndcg@10")


class RankEvalResult(BaseModel):
    encoder: str
    users: int
    candidates: int
    seed: int
    max_behaviors: int
    ranker_prior: str = "log1p(popularity)"
    ranker: TopKMetrics
    ranker_content_only: TopKMetrics
    popularity: TopKMetrics
    ranker_learned: TopKMetrics | None = None  # the bundle's ranker.json, same prior, no clock (ratings)

    def to_json_dict(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class UserCase:
    user_id: int
    history: np.ndarray  # (h,) movie ids, oldest first
    history_ts: np.ndarray  # (h,) unix seconds
    candidates: np.ndarray  # (1 + negatives,) movie ids, target first


def build_cases(
    ratings: list[Rating],
    movie_ids: np.ndarray,
    *,
    negatives: int = NEGATIVES,
    seed: int = SEED,
    min_positives: int = MIN_POSITIVES,
) -> list[UserCase]:
    """One case per qualifying user, in user-id order; ratings of movies outside `movie_ids` are ignored."""
    known = set(movie_ids.tolist())
    pool_all = np.sort(movie_ids)
    by_user: dict[int, list[Rating]] = defaultdict(list)
    for r in ratings:
        if r.movie_id in known:
            by_user[r.user_id].append(r)
    cases = []
    for user_id in sorted(by_user):
        rows = by_user[user_id]
        pos = sorted((r for r in rows if r.rating >= POSITIVE), key=lambda r: (r.timestamp, r.movie_id))
        if len(pos) < min_positives:
            continue
        rated = np.array(sorted({r.movie_id for r in rows}))
        pool = np.setdiff1d(pool_all, rated, assume_unique=True)
        if len(pool) < negatives:
            raise ValueError(f"user {user_id} has only {len(pool)} unrated movies; need {negatives}")
        rng = np.random.default_rng([seed, user_id])
        negs = rng.choice(pool, size=negatives, replace=False)
        cases.append(
            UserCase(
                user_id=user_id,
                history=np.array([r.movie_id for r in pos[:-1]]),
                history_ts=np.array([float(r.timestamp) for r in pos[:-1]]),
                candidates=np.concatenate([[pos[-1].movie_id], negs]),
            )
        )
    return cases


def popularity_counts(ratings: list[Rating], cases: list[UserCase]) -> Counter[int]:
    """Ratings per movie, minus each evaluated user's held-out target rating (it is what we predict)."""
    counts = Counter(r.movie_id for r in ratings)
    for c in cases:
        counts[int(c.candidates[0])] -= 1
    return counts


def hit_and_ndcg(scores: np.ndarray, k: int = K) -> tuple[float, float]:
    """Expected HR@k and NDCG@k of candidate 0 (the target) when ties are ordered at random."""
    target = scores[0]
    others = scores[1:]
    greater = int((others > target).sum())
    ties = int((others == target).sum())
    positions = np.arange(greater, greater + ties + 1)  # equally likely 0-based positions of the target
    inside = positions[positions < k]
    hr = len(inside) / len(positions)
    ndcg = float((1.0 / np.log2(inside + 2.0)).sum()) / len(positions)
    return hr, ndcg


def _mean(pairs: list[tuple[float, float]]) -> TopKMetrics:
    arr = np.array(pairs, dtype=np.float64).reshape(-1, 2)
    hr, ndcg = arr.mean(axis=0) if len(arr) else (0.0, 0.0)
    return TopKMetrics(hr=round(float(hr), 4), ndcg=round(float(ndcg), 4))


_EMBEDDINGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoder -> {texts key: matrix}


class ItemEmbeddings:
    """Every movie text embedded once per encoder and process (encoding dominates the run's time)."""

    def __init__(self, encoder: Encoder, texts: dict[int, str]) -> None:
        ids = sorted(texts)
        self.row = {m: i for i, m in enumerate(ids)}
        key = hashlib.sha256("\n".join(f"{i}\t{texts[i]}" for i in ids).encode()).hexdigest()
        try:
            memo = _EMBEDDINGS.setdefault(encoder, {})
        except TypeError:  # an encoder that cannot be weakly referenced is simply not memoised
            memo = {}
        if key not in memo:
            log.info("encoding %d item texts with %s", len(ids), encoder.name)
            memo[key] = encoder.encode([texts[i] for i in ids])
        self.matrix: np.ndarray = memo[key]

    def __getitem__(self, movie_ids: np.ndarray) -> np.ndarray:
        return self.matrix[[self.row[int(m)] for m in movie_ids]]


def rank_metrics(
    cases: list[UserCase],
    emb: ItemEmbeddings,
    config: RankerConfig | None = None,
    max_behaviors: int = MAX_BEHAVIORS,
    counts: Counter[int] | None = None,
) -> TopKMetrics:
    """The edge ranker over every case; with `counts`, log(1 + popularity) is the candidates' prior."""
    per_user = []
    for c in cases:
        hist, ts = c.history[-max_behaviors:], c.history_ts[-max_behaviors:]
        prior = None
        if counts is not None:
            prior = np.log1p(np.array([max(counts[int(m)], 0) for m in c.candidates], dtype=np.float64))
        s = score(emb[hist], ts, emb[c.candidates], config, prior=prior)
        per_user.append(hit_and_ndcg(s))
    return _mean(per_user)


def learned_metrics(
    cases: list[UserCase], emb: ItemEmbeddings, model: LearnedRanker, counts: Counter[int], max_behaviors: int
) -> TopKMetrics:
    """The learned ranker as a device would run it: movie ids as item ids, ratings as views, no clock."""
    per_user = []
    for c in cases:
        hist, ts = c.history[-max_behaviors:], c.history_ts[-max_behaviors:]
        prior = np.log1p(np.array([max(counts[int(m)], 0) for m in c.candidates], dtype=np.float64))
        s = model.score(
            emb[hist],
            ts,
            ["view"] * len(hist),
            [f"i:{m}" for m in hist],
            emb[c.candidates],
            [f"i:{m}" for m in c.candidates],
            Clock(),
            prior,
        )
        per_user.append(hit_and_ndcg(s))
    return _mean(per_user)


def popularity_metrics(cases: list[UserCase], counts: Counter[int]) -> TopKMetrics:
    return _mean([hit_and_ndcg(np.array([counts[int(m)] for m in c.candidates], dtype=np.float64)) for c in cases])


def evaluate_rank(
    encoder: Encoder,
    movies_path: str | Path,
    ratings_path: str | Path,
    tags_path: str | Path | None = None,
    *,
    config: RankerConfig | None = None,
    seed: int = SEED,
    negatives: int = NEGATIVES,
    max_behaviors: int = MAX_BEHAVIORS,
    learned: LearnedRanker | None = None,
) -> RankEvalResult:
    movies = load_movies(movies_path)
    tags = load_tags(tags_path) if tags_path else None
    texts = item_texts(movies, tags)
    ratings = load_ratings(ratings_path)
    cases = build_cases(ratings, np.array(sorted(texts)), negatives=negatives, seed=seed)
    if not cases:
        raise ValueError(f"{ratings_path}: no user has {MIN_POSITIVES} ratings >= {POSITIVE}")
    emb = ItemEmbeddings(encoder, texts)
    counts = popularity_counts(ratings, cases)
    return RankEvalResult(
        encoder=encoder.name,
        users=len(cases),
        candidates=negatives + 1,
        seed=seed,
        max_behaviors=max_behaviors,
        ranker=rank_metrics(cases, emb, config, max_behaviors, counts),
        ranker_content_only=rank_metrics(cases, emb, config, max_behaviors),
        popularity=popularity_metrics(cases, counts),
        ranker_learned=learned_metrics(cases, emb, learned, counts, max_behaviors) if learned else None,
    )


def run_eval_rank(args: argparse.Namespace) -> int:
    """`eibert eval rank --bundle teacher|DIR --movies F --ratings F [--tags F]`: one JSON line on stdout."""
    from model_store.encoders import load_encoder

    encoder = load_encoder(args.bundle, threads=getattr(args, "threads", None))
    learned = load_learned(str(args.bundle), getattr(args, "ranker", None))
    result = evaluate_rank(encoder, args.movies, args.ratings, getattr(args, "tags", None), learned=learned)
    print(json.dumps({"bundle": str(args.bundle), **result.to_json_dict()}))
    return 0
