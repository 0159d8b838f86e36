"""MovieLens ml-latest-small: movies, ratings (users 1-500 here), tags.

`movies.csv` is real CSV (titles contain quoted commas), so it goes through the csv module; ratings and tags
are parsed the same way for one code path. Item text = title + genres + the item's tags (method.md).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from model_store.data.textio import read_lines

NO_GENRES = "(no genres listed)"


@dataclass(frozen=True, slots=True)
class Movie:
    movie_id: int
    title: str
    genres: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rating:
    user_id: int
    movie_id: int
    rating: float
    timestamp: int


@dataclass(frozen=True, slots=True)
class Tag:
    user_id: int
    movie_id: int
    tag: str
    timestamp: int


def _rows(path: str | Path, expected_header: list[str]) -> list[list[str]]:
    reader = csv.reader(read_lines(path))
    header = next(reader, None)
    if header != expected_header:
        raise ValueError(f"{path}: header {header} != expected {expected_header}")
    return [row for row in reader if row]


def load_movies(path: str | Path) -> list[Movie]:
    out = []
    for row in _rows(path, ["movieId", "title", "genres"]):
        genres = () if row[2] == NO_GENRES else tuple(row[2].split("|"))
        out.append(Movie(movie_id=int(row[0]), title=row[1].strip(), genres=genres))
    return out


def load_ratings(path: str | Path) -> list[Rating]:
    return [
        Rating(user_id=int(r[0]), movie_id=int(r[1]), rating=float(r[2]), timestamp=int(r[3]))
        for r in _rows(path, ["userId", "movieId", "rating", "timestamp"])
    ]


def load_tags(path: str | Path) -> list[Tag]:
    return [
        Tag(user_id=int(r[0]), movie_id=int(r[1]), tag=r[2].strip(), timestamp=int(r[3]))
        for r in _rows(path, ["userId", "movieId", "tag", "timestamp"])
    ]


def item_texts(movies: list[Movie], tags: list[Tag] | None = None) -> dict[int, str]:
    """movie_id -> "title. genres. tags" with tags deduplicated case-insensitively, in first-seen order."""
    by_movie: dict[int, list[str]] = defaultdict(list)
    seen: dict[int, set[str]] = defaultdict(set)
    for t in tags or []:
        key = t.tag.lower()
        if t.tag and key not in seen[t.movie_id]:
            seen[t.movie_id].add(key)
            by_movie[t.movie_id].append(t.tag)
    texts = {}
    for m in movies:
        parts = [m.title]
        if m.genres:
            parts.append(", ".join(m.genres))
        if by_movie.get(m.movie_id):
            parts.append(", ".join(by_movie[m.movie_id]))
        texts[m.movie_id] = ". ".join(parts)
    return texts
