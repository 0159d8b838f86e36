"""Who the simulated users are: real MovieLens users (ids 1-500) and real MIND news, never invented text.

A persona's liked movies (rating >= 4) are split in time: the older part is the behavior history the device
starts with, the newer, held-out part defines what the user *really* likes (the ground truth the click model
uses), so a ranker that learns from behavior is rewarded only for generalising, not for echoing the history.
News interests are two MIND categories drawn per persona, since the MIND sample has no users joinable to
MovieLens. Devices beyond 500 reuse users with fresh news interests and activity.

How far down a slate a user looks is theirs too (COUPA's point: position bias is personal): P(examine slot k)
= 1 / (1 + k) ** examine_decay for k < examine_depth, else 0. A fifth of users skim (they never look past the
third slot), a fifth scroll deep (a decay of 0.1-0.3), the rest lie between. These are drawn from a stream of
their own (seeded by the run's seed), so adding them left every other draw of a persona as it was.

Item texts are cut to the edge's published per-text limit (`service.edge.schemas.MAX_TEXT_CHARS`): a
MovieLens title with all its tags can run past it (m296 is 2,304 characters), and the edge answers such a text
with a 422. The simulator respects the limit rather than the edge truncating for it; nothing is lost, since the
tokenizer keeps only the first `max_seq_len` tokens, a few hundred characters. In-process devices see the same
cut texts, so both modes rank the same inputs.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from model_store.data import item_texts, load_movies, load_news, load_ratings, load_tags
from model_store.data.paths import data_root
from service.common.ldp import GENRES
from service.edge.schemas import MAX_TEXT_CHARS

log = logging.getLogger(__name__)

LIKED_RATING = 4.0
HISTORY_SHARE = 0.7  # the older 70% of a user's liked movies is history, the rest the held-out truth
MAX_HISTORY = 20
MAX_USERS = 500  # the ratings shipped here cover users 1-500 only (501-610 are held back)
NEWS_CATEGORIES_PER_PERSONA = 2
MAX_NEWS_CHARS = 300
MIN_LIKED = 3
EXAMINE_DECAY = 0.8  # the typical user: P(look at slot k) = 1 / (1 + k) ** 0.8
SKIM_DEPTH = 3  # skimmers look at slots 0-2 only
_EXAMINATION_STREAM = 0x5E1EC7  # second seed word of the examination draws' generator


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str
    kind: Literal["movie", "news"]
    genres: tuple[str, ...] = ()
    category: str = ""


@dataclass(frozen=True, slots=True)
class Persona:
    user_id: int
    history: tuple[str, ...]  # item ids, oldest first: the behaviors the device starts with
    genre_affinity: dict[str, float]  # held-out liked genres, weight in (0, 1]: the ground-truth taste
    news_categories: frozenset[str]
    top_genre: str  # one of service.common.ldp.GENRES: what the `top_genre` metric should estimate
    sessions_per_day: float
    tz_offset_h: int
    examine_decay: float = EXAMINE_DECAY  # how fast attention falls with the slot
    examine_depth: int | None = None  # slots the user ever looks at (None: all)


@dataclass(frozen=True)
class Catalog:
    items: dict[str, Item]
    movie_ids: list[str]
    movie_weights: np.ndarray  # sampling weights of candidates (popularity^0.5, as a recall stage would)
    news_ids: list[str]


def load_catalog_and_personas(n: int, seed: int, root: Path | None = None) -> tuple[Catalog, list[Persona]]:
    """Blocking (reads and parses the data sets): call it from a worker thread inside an event loop."""
    root = root or data_root()
    movies = load_movies(root / "movielens" / "movies.csv.gz")
    ratings = load_ratings(root / "movielens" / "ratings.csv.gz")
    tags = load_tags(root / "movielens" / "tags.csv.gz")
    news = load_news(root / "mind-sample" / "MINDsmall_train" / "news.tsv.gz")
    texts = item_texts(movies, tags)
    genres_of = {m.movie_id: m.genres for m in movies}

    popularity: Counter[int] = Counter(r.movie_id for r in ratings)
    liked: dict[int, list[tuple[int, int]]] = defaultdict(list)  # user -> [(timestamp, movie)]
    for r in ratings:
        if r.rating >= LIKED_RATING:
            liked[r.user_id].append((r.timestamp, r.movie_id))

    items: dict[str, Item] = {}
    for movie_id in popularity:
        items[f"m{movie_id}"] = Item(
            f"m{movie_id}", texts[movie_id][:MAX_TEXT_CHARS], "movie", genres=genres_of[movie_id]
        )
    for item in news:
        text = f"{item.title}. {item.abstract}" if item.abstract else item.title
        items[f"n{item.news_id}"] = Item(f"n{item.news_id}", text[:MAX_NEWS_CHARS], "news", category=item.category)
    movie_ids = [f"m{m}" for m in popularity]
    weights = np.sqrt(np.array([popularity[int(i[1:])] for i in movie_ids], dtype=np.float64))
    catalog = Catalog(
        items=items,
        movie_ids=movie_ids,
        movie_weights=weights / weights.sum(),
        news_ids=[f"n{item.news_id}" for item in news],
    )

    rng = np.random.default_rng(seed)
    users = [u for u in sorted(liked) if u <= MAX_USERS and len(liked[u]) >= MIN_LIKED]
    rng.shuffle(users)
    categories = sorted({item.category for item in news})
    personas = [
        _persona(users[i % len(users)], sorted(liked[users[i % len(users)]]), genres_of, categories, rng)
        for i in range(n)
    ]
    exam_rng = np.random.default_rng([seed, _EXAMINATION_STREAM])
    personas = [replace(p, **_examination_style(exam_rng)) for p in personas]
    log.info("%d personas from %d MovieLens users; %d catalog items", n, len(users), len(items))
    return catalog, personas


def _persona(
    user_id: int,
    liked: list[tuple[int, int]],
    genres_of: dict[int, tuple[str, ...]],
    categories: list[str],
    rng: np.random.Generator,
) -> Persona:
    cut = max(1, min(len(liked) - 1, round(len(liked) * HISTORY_SHARE)))
    history = [f"m{m}" for _, m in liked[:cut]][-MAX_HISTORY:]
    held_out: Counter[str] = Counter(g for _, m in liked[cut:] for g in genres_of[m])
    peak = max(held_out.values(), default=1)
    all_genres: Counter[str] = Counter(g for _, m in liked for g in (genres_of[m] or ("(no genres listed)",)))
    top = max(sorted(all_genres), key=lambda g: all_genres[g])
    return Persona(
        user_id=user_id,
        history=tuple(history),
        genre_affinity={g: c / peak for g, c in held_out.items()},
        news_categories=frozenset(rng.choice(categories, size=NEWS_CATEGORIES_PER_PERSONA, replace=False).tolist()),
        top_genre=top if top in GENRES else GENRES[0],
        sessions_per_day=float(rng.gamma(shape=4.0, scale=1.0)),  # mean 4 sessions a day, some heavy users
        tz_offset_h=int(rng.integers(-2, 3)),
    )


def _examination_style(rng: np.random.Generator) -> dict[str, float | int | None]:
    """A fifth skim (never past slot 2), a fifth scroll deep, the rest lie between."""
    style = rng.random()
    if style < 0.2:
        return {"examine_decay": float(rng.uniform(0.6, 1.2)), "examine_depth": SKIM_DEPTH}
    if style < 0.4:
        return {"examine_decay": float(rng.uniform(0.1, 0.3)), "examine_depth": None}
    return {"examine_decay": float(rng.uniform(0.5, 1.5)), "examine_depth": None}


def examination(persona: Persona, slot: int) -> float:
    """Ground-truth probability that this user looks at the item in 0-based `slot` of a slate."""
    if persona.examine_depth is not None and slot >= persona.examine_depth:
        return 0.0
    return 1.0 / (1.0 + slot) ** persona.examine_decay


def examination_curve(persona: Persona, slots: int) -> np.ndarray:
    """(slots,) `examination` of every slot: the truth a position-bias estimate is measured against."""
    return np.array([examination(persona, k) for k in range(slots)])


def relevance(item: Item, persona: Persona) -> float:
    """Ground-truth probability that this user clicks this item once they look at it."""
    if item.kind == "news":
        return 0.35 if item.category in persona.news_categories else 0.02
    if not item.genres:
        return 0.03
    affinity = sum(persona.genre_affinity.get(g, 0.0) for g in item.genres) / len(item.genres)
    return 0.03 + 0.6 * affinity
