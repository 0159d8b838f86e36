from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from service.common.bounded_json import DEFAULT_MAX_DEPTH, load_bounded, loads_bounded, nesting_depth_exceeds
from service.common.errors import BundleError
from service.common.manifest import read_manifest


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_refused_before_the_parser_recurses(opener: str) -> None:
    with pytest.raises(BundleError, match=f"nests deeper than the limit of {DEFAULT_MAX_DEPTH} levels"):
        loads_bounded((opener * 5000).encode(), what="manifest.json", max_bytes=1 << 20)


def test_nesting_at_the_limit_parses_and_one_more_level_is_refused() -> None:
    at_limit = "[" * DEFAULT_MAX_DEPTH + "]" * DEFAULT_MAX_DEPTH
    assert loads_bounded(at_limit.encode(), what="x", max_bytes=1 << 20) == json.loads(at_limit)
    with pytest.raises(BundleError, match="nests deeper"):
        loads_bounded(f"[{at_limit}]".encode(), what="x", max_bytes=1 << 20)


def test_brackets_inside_strings_do_not_count() -> None:
    doc = {"a": "[" * 5000, "b": '\\"{{{{ "', "c": ["]]]]" * 10]}
    assert loads_bounded(json.dumps(doc).encode(), what="x", max_bytes=1 << 20) == doc


def test_an_escaped_quote_does_not_end_a_string() -> None:
    text = '["\\"' + "[" * 100 + '"]'  # one string holding a quote and 100 brackets
    assert not nesting_depth_exceeds(text, 2)
    assert nesting_depth_exceeds('["\\\\"' + "[" * 100, 2)  # an escaped backslash does end it


def test_the_depth_scan_is_linear_on_adversarial_strings() -> None:
    text = '"' + '\\"' * 2_000_000  # an unterminated string of escaped quotes: quadratic for a naive regex
    t0 = time.perf_counter()
    assert not nesting_depth_exceeds(text, 2)
    assert time.perf_counter() - t0 < 5


def test_size_limit_and_unparseable_input_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="larger than the 10-byte limit"):
        loads_bounded(b"[1, 2, 3, 4, 5]", what="x", max_bytes=10)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 1000 + b"{}")
    with pytest.raises(BundleError, match="larger than the 100-byte limit"):
        load_bounded(big, max_bytes=100)
    with pytest.raises(BundleError, match="not valid JSON"):
        loads_bounded(b"\xff\xfe", what="x", max_bytes=100)
    with pytest.raises(BundleError, match="not valid JSON"):  # int() refuses > 4300 digits with ValueError
        loads_bounded(b"1" * 5000, what="x", max_bytes=10_000)


def test_read_manifest_refuses_a_deep_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"schema_version": 1, "build": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(BundleError, match="nests deeper than the limit"):
        read_manifest(tmp_path)
