"""`If-None-Match` matching (RFC 9110 §13.1.2: weak comparison, lists, `*`)."""

from __future__ import annotations


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match or len(if_none_match) > 4096:
        return False
    target = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == target:
            return True
    return False
