"""Users' own distillation text (`[corpus] files`): plain text, one sentence per line, or JSONL with a `text` field.

Read strictly: a missing file, a line that is not JSON, a JSONL record without a string `text`, undecodable
bytes or a line longer than `MAX_LINE_CHARS` (a binary or a wrong file, not a sentence) stop the build with the
file and line named, before the teacher spends time on it. Blank lines are skipped.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from pydantic import BaseModel

from model_store.data.paths import from_repo, repo_relative
from service.common.manifest import sha256_file

MAX_LINE_CHARS = 100_000
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class CorpusFileError(ValueError):
    """A `[corpus] files` entry that cannot be read as distillation text (one line on the CLI)."""


class FileSource(BaseModel):
    path: str  # relative to the repository, as the config records it
    bytes: int  # on disk
    sentences: int  # non-blank lines (records), before deduplication
    kept: int = 0  # of them, new to the corpus after deduplication (set by `corpus.collect`)


def source_name(path: str) -> str:
    """The corpus `sources` key of a file: `files/<path as recorded>`."""
    return f"files/{path}"


resolve = from_repo  # a recorded path (relative to the repository, or absolute) as a file to open


def record_paths(files: tuple[str, ...]) -> tuple[str, ...]:
    """Paths as given on this machine (relative to the working directory) -> as the config records them."""
    for f in files:
        if not Path(f).expanduser().is_file():
            raise CorpusFileError(f"[corpus] files: {f}: no such file")
    return tuple(repo_relative(f) for f in files)


def digests(files: tuple[str, ...]) -> list[str]:
    """sha256 of each file: part of the corpus stage's key, so editing a file rebuilds the corpus."""
    return [sha256_file(_existing(f)) for f in files]


def read_texts(path: str) -> list[str]:
    """The sentences of one file, in file order."""
    p = _existing(path)
    jsonl = p.name.removesuffix(".gz").endswith(JSONL_SUFFIXES)
    texts = []
    try:
        with gzip.open(p, "rt", encoding="utf-8") if p.suffix == ".gz" else p.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if len(line) > MAX_LINE_CHARS:
                    raise CorpusFileError(f"{path}:{n}: line longer than {MAX_LINE_CHARS:,} characters")
                if line.strip():
                    texts.append(_jsonl_text(line, path, n) if jsonl else line.strip())
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise CorpusFileError(f"{path}: not UTF-8 text ({exc})") from exc
    return texts


def _existing(path: str) -> Path:
    p = resolve(path)
    if not p.is_file():
        raise CorpusFileError(f"[corpus] files: {path}: no such file")
    return p


def _jsonl_text(line: str, path: str, n: int) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusFileError(f"{path}:{n}: not a JSON line ({exc.msg})") from exc
    text = record.get("text") if isinstance(record, dict) else None
    if not isinstance(text, str):
        raise CorpusFileError(f'{path}:{n}: a JSONL record needs a string "text" field')
    return text


def describe(path: str, texts: list[str]) -> FileSource:
    return FileSource(path=path, bytes=resolve(path).stat().st_size, sentences=len(texts))
