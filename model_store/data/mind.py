"""MIND news and behaviour logs (tab-separated, no header).

In the shared sample the two files were sampled independently: most news ids in `behaviors.tsv` are absent
from `news.tsv`. The loader therefore never joins them; callers use `news_texts` as text and treat behaviour
rows as a format check only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model_store.data.textio import read_tsv


@dataclass(frozen=True, slots=True)
class NewsItem:
    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str


@dataclass(frozen=True, slots=True)
class Impression:
    impression_id: str
    user_id: str
    time: str
    history: tuple[str, ...]  # clicked news ids before this impression
    impressions: tuple[tuple[str, int], ...]  # (news id, clicked 0/1)


def load_news(path: str | Path) -> list[NewsItem]:
    out = []
    for lineno, f in enumerate(read_tsv(path, header=False), start=1):
        if len(f) < 5:
            raise ValueError(f"{path}:{lineno}: MIND news row needs >= 5 fields, got {len(f)}")
        out.append(NewsItem(news_id=f[0], category=f[1], subcategory=f[2], title=f[3], abstract=f[4]))
    return out


def load_behaviors(path: str | Path) -> list[Impression]:
    out = []
    for lineno, f in enumerate(read_tsv(path, header=False), start=1):
        if len(f) != 5:
            raise ValueError(f"{path}:{lineno}: MIND behaviour row needs 5 fields, got {len(f)}")
        shown = []
        for tok in f[4].split():
            news_id, _, clicked = tok.rpartition("-")
            if not news_id or clicked not in ("0", "1"):
                raise ValueError(f"{path}:{lineno}: bad impression token {tok!r}")
            shown.append((news_id, int(clicked)))
        out.append(
            Impression(
                impression_id=f[0],
                user_id=f[1],
                time=f[2],
                history=tuple(f[3].split()),
                impressions=tuple(shown),
            )
        )
    return out


def news_texts(items: list[NewsItem]) -> list[str]:
    """Title, and the abstract when there is one: the text a news reader's behaviour would carry."""
    return [f"{n.title}. {n.abstract}" if n.abstract else n.title for n in items]
