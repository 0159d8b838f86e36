"""Loaders for the shared data sets (STS-B, GLUE, MovieLens, MIND), each robust to its file's pitfalls."""

from model_store.data.glue import GLUE_TASKS, GlueExample, glue_path, load_glue
from model_store.data.mind import Impression, NewsItem, load_behaviors, load_news, news_texts
from model_store.data.movielens import Movie, Rating, Tag, item_texts, load_movies, load_ratings, load_tags
from model_store.data.paths import DATA_ENV, data_file, data_root
from model_store.data.stsb import StsPair, load_sts

__all__ = [
    "DATA_ENV",
    "GLUE_TASKS",
    "GlueExample",
    "Impression",
    "Movie",
    "NewsItem",
    "Rating",
    "StsPair",
    "Tag",
    "data_file",
    "data_root",
    "glue_path",
    "item_texts",
    "load_behaviors",
    "load_glue",
    "load_movies",
    "load_news",
    "load_ratings",
    "load_sts",
    "load_tags",
    "news_texts",
]
