"""MovieLens ranking evaluation: the protocol on a fixture whose answer is known, then on the real file."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from model_store.data.movielens import Rating
from model_store.eval_rank import (
    NEGATIVES,
    build_cases,
    evaluate_rank,
    hit_and_ndcg,
    popularity_counts,
    run_eval_rank,
)

SAGA = range(1, 11)  # "Saga Part k": the one interest of the qualifying user
FILMS = range(11, 111)  # 100 unrelated dramas; 11..30 are popular with other users


class SagaEncoder:
    """Saga texts share one direction; every other title gets its own: similarity = 'same saga'."""

    name = "saga"
    dim = 128

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, 0 if "Saga" in t else 1 + int(re.search(r"Film (\d+)", t).group(1)) % (self.dim - 1)] = 1.0
        return out


def write_fixture(root: Path) -> tuple[Path, Path, Path]:
    movies = root / "movies.csv"
    lines = ["movieId,title,genres"]
    lines += [f'{m},"Saga Part {m}, The (2001)",Sci-Fi|Adventure' for m in SAGA]
    lines += [f"{m},Film {m} (1990),Drama" for m in FILMS]
    movies.write_text("\n".join(lines) + "\n")
    ratings = root / "ratings.csv"
    rows = ["userId,movieId,rating,timestamp"]
    # User 1: six saga positives, listed out of time order; one low rating of a drama (rated, so never a negative).
    for m, ts in [(4, 400), (1, 100), (6, 600), (2, 200), (5, 500), (3, 300)]:
        rows.append(f"1,{m},5.0,{ts}")
    rows.append("1,50,2.0,700")
    # Users 2-4: many ratings of popular dramas but fewer than 5 positives each: they shape popularity only.
    for u in (2, 3, 4):
        rows += [f"{u},{m},3.0,{m}" for m in range(11, 31)]
        rows += [f"{u},{m},4.5,{1000 + m}" for m in range(31, 35)]
    ratings.write_text("\n".join(rows) + "\n")
    tags = root / "tags.csv"
    tags.write_text("userId,movieId,tag,timestamp\n2,1,space,1\n")
    return movies, ratings, tags


def test_protocol_cases(tmp_path: Path) -> None:
    from model_store.data.movielens import load_ratings

    _movies, ratings_path, _ = write_fixture(tmp_path)
    ratings = load_ratings(ratings_path)
    ids = np.array(list(SAGA) + list(FILMS))
    cases = build_cases(ratings, ids, seed=0)
    assert [c.user_id for c in cases] == [1]  # users 2-4 have only 4 positives
    c = cases[0]
    assert list(c.history) == [1, 2, 3, 4, 5] and list(c.history_ts) == [100, 200, 300, 400, 500]
    assert c.candidates[0] == 6 and len(c.candidates) == NEGATIVES + 1 and len(set(c.candidates)) == 100
    assert not set(c.candidates[1:].tolist()) & {1, 2, 3, 4, 5, 6, 50}  # never a movie the user rated
    again = build_cases(ratings, ids, seed=0)[0]
    assert np.array_equal(again.candidates, c.candidates)
    assert not np.array_equal(build_cases(ratings, ids, seed=1)[0].candidates, c.candidates)
    # A user's candidates do not depend on which other users are in the file.
    alone = build_cases([r for r in ratings if r.user_id == 1], ids, seed=0)[0]
    assert np.array_equal(alone.candidates, c.candidates)
    counts = popularity_counts(ratings, cases)
    assert counts[6] == 0 and counts[11] == 3  # the held-out target rating is not counted


def test_hit_and_ndcg_with_ties_is_the_expectation_over_tied_orders() -> None:
    assert hit_and_ndcg(np.array([5.0, 1, 2, 3])) == (1.0, 1.0)
    hr, ndcg = hit_and_ndcg(np.array([3.0, 5, 4, 1]))  # third
    assert hr == 1.0 and ndcg == pytest.approx(0.5)
    assert hit_and_ndcg(np.array([0.0] + [1.0] * 10)) == (0.0, 0.0)  # eleventh
    hr, ndcg = hit_and_ndcg(np.zeros(100))  # all tied: position uniform over 0..99
    assert hr == pytest.approx(0.1)
    assert ndcg == pytest.approx(sum(1 / np.log2(p + 2) for p in range(10)) / 100)
    hr, _ = hit_and_ndcg(np.array([1.0] + [2.0] * 8 + [1.0] * 3))  # 8 above, 3 ties: positions 8..11
    assert hr == pytest.approx(0.5)


def test_known_answer_ranker_finds_the_saga_popularity_does_not(tmp_path: Path) -> None:
    movies, ratings, tags = write_fixture(tmp_path)
    enc = SagaEncoder()
    result = evaluate_rank(enc, movies, ratings, tags)
    assert (result.users, result.candidates) == (1, 100)
    assert result.ranker_content_only.hr == 1.0 and result.ranker_content_only.ndcg >= 1 / np.log2(6)
    assert result.ranker.hr == 1.0  # content outweighs the popular dramas' prior
    assert result.popularity.hr == 0.0 and result.popularity.ndcg == 0.0  # 15+ popular dramas outrank it
    evaluate_rank(enc, movies, ratings, tags)
    assert enc.calls == 1  # item embeddings are computed once per encoder and run


def test_cli_handler_prints_one_json_line(tmp_path: Path, tiny_bundle: Path, capsys) -> None:
    movies, ratings, tags = write_fixture(tmp_path)
    args = argparse.Namespace(bundle=str(tiny_bundle), movies=str(movies), ratings=str(ratings), tags=str(tags))
    assert run_eval_rank(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    for method in ("ranker", "ranker_content_only", "popularity"):
        assert set(out[method]) == {"hr@10", "ndcg@10"} and 0.0 <= out[method]["ndcg@10"] <= out[method]["hr@10"] <= 1


def test_users_without_enough_positives_are_an_error(tmp_path: Path) -> None:
    movies, _, _ = write_fixture(tmp_path)
    ratings = tmp_path / "few.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,1,5.0,1\n")
    with pytest.raises(ValueError, match="no user has 5 ratings"):
        evaluate_rank(SagaEncoder(), movies, ratings)


class HashedWords:
    """A cheap real text encoder (hashed bag of words): enough to show content signal on the real file."""

    name = "hashed-words"
    dim = 256

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class RandomVectors(HashedWords):
    """Control: one random vector per text, so any gain it showed would come from the blend, not content."""

    name = "random"

    def encode(self, texts, batch_size: int = 64) -> np.ndarray:
        seeds = [int(hashlib.md5(t.encode()).hexdigest()[:8], 16) for t in texts]
        out = np.stack([np.random.default_rng(s).standard_normal(self.dim) for s in seeds]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _real(data_dir: Path) -> tuple[Path, Path, Path]:
    ml = data_dir / "movielens"
    return ml / "movies.csv.gz", ml / "ratings.csv.gz", ml / "tags.csv.gz"


def test_on_the_real_file_content_lifts_the_ranker_above_popularity(data_dir: Path) -> None:
    words = evaluate_rank(HashedWords(), *_real(data_dir))
    assert words.users > 400
    assert words.ranker.hr > words.popularity.hr + 0.02 and words.ranker.ndcg > words.popularity.ndcg + 0.02
    noise = evaluate_rank(RandomVectors(), *_real(data_dir))
    assert noise.popularity == words.popularity  # same protocol, same candidates
    assert noise.ranker.hr < words.popularity.hr  # random "content" only hurts popularity


@pytest.mark.slow
def test_teacher_ranker_beats_popularity_clearly(data_dir: Path) -> None:
    """The teacher through the edge runtime (its fp32 ONNX export, cached under .cache): about 30 s."""
    from model_store.teacher import export_teacher_bundle
    from service.edge.encoder import OnnxEncoder

    root = Path(__file__).resolve().parents[2]
    encoder = OnnxEncoder(export_teacher_bundle(root / ".cache" / "teacher-onnx-fp32"), threads=2)
    result = evaluate_rank(encoder, *_real(data_dir))
    assert result.ranker.hr > result.popularity.hr + 0.04
    assert result.ranker.ndcg > result.popularity.ndcg + 0.04
    assert result.ranker_content_only.hr > 0.3  # content alone is far above chance (0.1)


def test_rating_dataclass_is_what_build_cases_reads() -> None:
    r = Rating(user_id=1, movie_id=2, rating=4.0, timestamp=3)
    assert build_cases([r] * 4, np.arange(1, 200)) == []
