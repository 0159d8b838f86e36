from __future__ import annotations

from pathlib import Path

from model_store.benchmarks import replace_section, short_text, time_call, write_section


def test_sections_are_replaced_not_duplicated(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    write_section(out, "teacher", "first")
    write_section(out, "edge", "edge figures")
    write_section(out, "teacher", "second")
    doc = out.read_text()
    assert doc.count("<!-- bench:teacher -->") == 1
    assert "second" in doc and "first" not in doc and "edge figures" in doc
    assert doc.index("second") < doc.index("edge figures")  # replaced in place


def test_replacement_text_is_literal() -> None:
    doc = replace_section("", "x", r"a \1 b")
    assert r"a \1 b" in replace_section(doc, "x", r"a \1 b")


def test_time_call_counts_runs() -> None:
    calls = []
    lat = time_call(lambda: calls.append(1), repeats=7, warmup=2)
    assert len(calls) == 9 and lat.runs == 7 and lat.p50_ms >= 0


def test_short_text_picks_exact_token_count() -> None:
    assert short_text(lambda s: len(s.split()), ["a b", "a b c d"], tokens=4) == "a b c d"
