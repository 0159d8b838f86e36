"""Reading the shared files as lines of text.

All shared files are gzip-compressed UTF-8 (some with a byte-order mark); plain files are accepted too so a
held-out split can be pointed at in either form. Tab-separated files are split by hand, never by a CSV quote
parser, because GLUE and STS-B carry bare `"` characters that a quote parser would swallow across rows.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path


def read_lines(path: str | Path) -> Iterator[str]:
    """Yield lines without their line ending; the BOM of the first line is dropped."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data file not found: {p}")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8-sig", newline="") as fh:
        for line in fh:
            yield line.rstrip("\r\n")


def read_tsv(path: str | Path, *, header: bool) -> Iterator[list[str]]:
    """Yield the tab-split fields of each non-empty line, skipping the header row when there is one."""
    lines = read_lines(path)
    if header:
        next(lines, None)
    for line in lines:
        if line:
            yield line.split("\t")
