"""Real texts for the load tests: MovieLens titles with genres and MIND news titles, as one small JSON file.

The runner writes the sample (`write_sample`) and passes its path to locust in `EIBERT_LOAD_TEXTS`; locust users
only read it (`load_sample`). Without that variable the sample is built from the data root (`EIBERT_DATA`, as
the docker compose locust service does), and without data from a short built-in list, with a warning: the
request shapes stay realistic either way, only the vocabulary gets smaller.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from service.edge.schemas import MAX_TEXT_CHARS

log = logging.getLogger(__name__)

SAMPLE_ENV = "EIBERT_LOAD_TEXTS"
DEFAULT_MOVIES = 3000
DEFAULT_NEWS = 2000

_FALLBACK_TITLES = (
    "Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy",
    "Heat (1995). Action, Crime, Thriller",
    "Sense and Sensibility (1995). Drama, Romance",
    "The Matrix (1999). Action, Sci-Fi, Thriller",
    "Amelie (2001). Comedy, Romance",
    "Spirited Away (2001). Adventure, Animation, Fantasy",
    "City council approves new budget for road repairs",
    "Storm brings heavy rain and flooding to the coast",
    "Local team wins championship after overtime thriller",
    "Ten easy weeknight dinners the whole family will like",
    "Stocks close higher as tech shares rally",
    "Scientists find water ice near the moon's south pole",
)


@dataclass
class TextSample:
    items: list[dict[str, str]]  # {"id", "text"}: what users interact with (behaviors) and get ranked (candidates)
    short: list[str]  # titles only: the 1-4 short texts of an /v1/encode call

    def check(self) -> TextSample:
        if len(self.items) < 2 or not self.short:
            raise ValueError("a text sample needs at least 2 items and 1 short text")
        if len({i["id"] for i in self.items}) != len(self.items):
            raise ValueError("item ids in a text sample must be unique")
        return self


def _clip(text: str) -> str:
    return text.strip()[:MAX_TEXT_CHARS]


def build_sample(max_movies: int = DEFAULT_MOVIES, max_news: int = DEFAULT_NEWS, seed: int = 0) -> TextSample:
    """A seeded subset of MovieLens ("title. genres") and MIND (title) texts from the data root."""
    from model_store.data import data_file, item_texts, load_movies, load_news

    rng = random.Random(seed)
    movies = load_movies(data_file("movielens", "movies.csv.gz"))
    movies = rng.sample(movies, min(max_movies, len(movies)))
    news = load_news(data_file("mind-sample", "MINDsmall_train", "news.tsv.gz"))
    news = rng.sample(news, min(max_news, len(news)))
    texts = item_texts(movies)  # no tags: a behavior text on a phone is a title and its genres
    items = [{"id": f"ml-{m.movie_id}", "text": _clip(texts[m.movie_id])} for m in movies]
    items += [{"id": f"mind-{n.news_id}", "text": _clip(n.title)} for n in news if n.title.strip()]
    short = [_clip(m.title) for m in movies] + [_clip(n.title) for n in news if n.title.strip()]
    return TextSample(items=items, short=short).check()


def fallback_sample() -> TextSample:
    items = [{"id": f"fallback-{i}", "text": t} for i, t in enumerate(_FALLBACK_TITLES)]
    return TextSample(items=items, short=[t.split(". ")[0] for t in _FALLBACK_TITLES]).check()


def write_sample(path: Path, sample: TextSample) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(sample)), encoding="utf-8")
    return path


def read_sample(path: Path) -> TextSample:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return TextSample(items=list(raw["items"]), short=list(raw["short"])).check()


def load_sample() -> TextSample:
    """The sample named by EIBERT_LOAD_TEXTS, else one built from the data root, else the built-in list."""
    path = os.environ.get(SAMPLE_ENV)
    if path:
        return read_sample(Path(path))
    try:
        return build_sample()
    except (FileNotFoundError, ValueError) as exc:
        log.warning("no load-test texts (%s); using %d built-in titles", exc, len(_FALLBACK_TITLES))
        return fallback_sample()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.texts", description="write the load-test text sample")
    p.add_argument("--out", required=True)
    p.add_argument("--movies", type=int, default=DEFAULT_MOVIES)
    p.add_argument("--news", type=int, default=DEFAULT_NEWS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_sample(Path(args.out), build_sample(args.movies, args.news, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
