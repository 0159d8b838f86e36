"""The session-options memory probe: it measures in a fresh interpreter, and a bad option is an error, not a row."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loadtests.rss_options import OPTION_SETS, measure


def test_each_row_splits_into_heap_and_library_code(tiny_bundle: Path) -> None:
    m = measure(tiny_bundle, OPTION_SETS["arena and memory pattern off"])
    assert set(m) == {"VmRSS", "RssAnon", "RssFile"}
    assert m["VmRSS"] == pytest.approx(m["RssAnon"] + m["RssFile"], abs=0.3)
    assert m["VmRSS"] > 0  # a session of a real graph costs something


def test_an_option_onnxruntime_does_not_have_fails_the_probe(tiny_bundle: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        measure(tiny_bundle, {"graph_optimization_level": "ORT_NOT_A_LEVEL"})
