from __future__ import annotations

import pytest

from model_store.data.movielens import item_texts, load_movies, load_ratings, load_tags


@pytest.fixture(scope="module")
def movielens(data_dir):
    root = data_dir / "movielens"
    return (
        load_movies(root / "movies.csv.gz"),
        load_ratings(root / "ratings.csv.gz"),
        load_tags(root / "tags.csv.gz"),
    )


def test_documented_row_counts(movielens) -> None:
    movies, ratings, tags = movielens
    assert len(movies) == 9742
    assert len(ratings) == 79993
    assert len(tags) == 3683  # not in the README; the file's own count, pinned so a changed file is noticed


def test_ratings_hold_users_1_to_500_only(movielens) -> None:
    _, ratings, _ = movielens
    users = {r.user_id for r in ratings}
    assert min(users) == 1 and max(users) <= 500
    assert all(0.5 <= r.rating <= 5.0 for r in ratings)


def test_quoted_titles_with_commas(movielens) -> None:
    movies, _, _ = movielens
    titles = {m.title for m in movies}
    assert "American President, The (1995)" in titles
    assert all(m.title for m in movies)


def test_item_text_is_title_genres_tags(movielens) -> None:
    movies, _, tags = movielens
    texts = item_texts(movies, tags)
    assert texts[1].startswith("Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy")
    tagged = next(t.movie_id for t in tags)
    assert texts[tagged].count(". ") >= 2


def test_no_genres_and_case_insensitive_tag_dedup(tmp_path) -> None:
    movies_csv = tmp_path / "movies.csv"
    movies_csv.write_text('movieId,title,genres\n7,"Odd, The (2000)",(no genres listed)\n')
    tags_csv = tmp_path / "tags.csv"
    tags_csv.write_text("userId,movieId,tag,timestamp\n1,7,Funny,1\n2,7,funny,2\n3,7,dark,3\n")
    movies = load_movies(movies_csv)
    assert movies[0].genres == ()
    assert item_texts(movies, load_tags(tags_csv))[7] == "Odd, The (2000). Funny, dark"


def test_wrong_header_raises(tmp_path) -> None:
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,score,time\n1,2,3,4\n")
    with pytest.raises(ValueError, match="header"):
        load_ratings(bad)
