"""JSON from untrusted bundle files with a size cap and a nesting-depth cap, checked before `json.loads` runs.

`json.loads('[' * 5000)` raises RecursionError (a 500 in a web app, and a deep C stack on the way there), and
`json.loads` of a huge file allocates whatever the file holds. The standard library has no depth option and
no vetted, maintained package adds one to the stdlib parser, so the depth is measured here first, in one pass
over the text with a compiled regex: strings are matched whole (brackets inside them do not count) and every
`[`/`{` outside a string deepens the nesting. The scan can only over-count relative to the parser (a string
the parser would reject still hides only what the parser never reaches), so once it passes,
`json.loads` cannot nest deeper than `max_depth`, far below Python's recursion limit.

HF `tokenizers` (serde_json) has its own fixed recursion limit of 128 and answers deep input with a plain
`Exception("recursion limit exceeded ...")`; the same cap here runs first so its error is a clear BundleError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from service.common.errors import BundleError

DEFAULT_MAX_DEPTH = 32  # shipped manifests and tokenizers nest 5 deep
MANIFEST_MAX_BYTES = 256 * 1024  # shipped manifests are under 10 KB
TOKENIZER_MAX_BYTES = 16 * 1024 * 1024  # shipped tokenizers are under 100 KB, a full BERT one is ~700 KB
RANKER_MAX_BYTES = 512 * 1024  # a learned ranker (`ranker.json`); the shipped one is ~20 KB
# A string (escapes included; an unterminated one runs to the end, as it does for the parser) or one bracket;
# everything else is skipped by finditer. Unrolled and never backtracking, so the scan is linear in the text.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def nesting_depth_exceeds(text: str, max_depth: int) -> bool:
    """True as soon as brackets outside strings nest deeper than `max_depth`."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif token in "]}":
            depth -= 1
    return False


def loads_bounded(data: bytes, *, what: str, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON `data`; BundleError naming the limit if it is too large or nests too deep."""
    if len(data) > max_bytes:
        raise BundleError(f"{what} is larger than the {max_bytes:,}-byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{what}: not valid JSON (not UTF-8: {exc})") from exc
    if nesting_depth_exceeds(text, max_depth):
        raise BundleError(f"{what} nests deeper than the limit of {max_depth} levels")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and int() past the 4300-digit limit
        raise BundleError(f"{what}: not valid JSON ({str(exc)[:200]})") from exc


def read_bounded(path: Path, *, max_bytes: int) -> bytes:
    """At most `max_bytes` of the file (one more byte is read to tell a file that is too large)."""
    with Path(path).open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BundleError(f"{Path(path).name} is larger than the {max_bytes:,}-byte limit")
    return data


def load_bounded(path: Path, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """`loads_bounded` of a file, reading no more than `max_bytes + 1` bytes of it."""
    return loads_bounded(
        read_bounded(path, max_bytes=max_bytes), what=str(path), max_bytes=max_bytes, max_depth=max_depth
    )
