"""STS Benchmark, original release files (`sts-train.csv.gz`, `sts-dev.csv.gz`, the held-back test).

Despite the `.csv` name these are tab-separated, without a header: genre, source, year, id, score (0-5),
sentence1, sentence2, and on some rows two extra source columns that we ignore.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model_store.data.textio import read_tsv


@dataclass(frozen=True, slots=True)
class StsPair:
    sentence1: str
    sentence2: str
    score: float  # gold similarity, 0-5
    genre: str


def load_sts(path: str | Path) -> list[StsPair]:
    """Load an STS-B original file; a row with fewer than 7 fields or a bad score is an error, not a skip."""
    pairs: list[StsPair] = []
    for lineno, fields in enumerate(read_tsv(path, header=False), start=1):
        if len(fields) < 7:
            raise ValueError(f"{path}:{lineno}: expected >= 7 tab-separated fields, got {len(fields)}")
        genre, _source, _year, _id, score, s1, s2 = fields[:7]
        try:
            value = float(score)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: score {score!r} is not a number") from exc
        if not 0.0 <= value <= 5.0:
            raise ValueError(f"{path}:{lineno}: score {value} outside 0-5")
        pairs.append(StsPair(sentence1=s1, sentence2=s2, score=value, genre=genre))
    return pairs
