"""BENCHMARKS.md sections: each benchmark replaces its own section in place and leaves the others alone."""

from __future__ import annotations

from pathlib import Path

from service.devstack.bench_file import replace_section, write_section


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
