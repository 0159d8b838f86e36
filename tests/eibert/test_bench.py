"""`eibert bench` is assembled by the CLI package from each part's sections and keeps its flags and defaults:
`make bench` writes every section."""

from __future__ import annotations

from pathlib import Path

import pytest

import eibert.bench
from eibert.bench import BENCH_SECTIONS, DEFAULT_CACHE, cmd_bench
from eibert.cli import build_parser
from model_store.shipped import SHIPPED_BUNDLE
from service.devstack.bench_file import BenchRun


def test_bench_flags_and_defaults() -> None:
    args = build_parser().parse_args(["bench", "--out", "BENCHMARKS.md"])
    assert args.func is cmd_bench
    assert args.sections == list(BENCH_SECTIONS) == ["teacher", "model", "edge", "cloud", "serving"]
    assert (args.out, args.bundle, args.cache, args.sts_data) == ("BENCHMARKS.md", str(SHIPPED_BUNDLE), ".cache", None)
    assert SHIPPED_BUNDLE.is_dir() and str(DEFAULT_CACHE) == ".cache"
    args = build_parser().parse_args(["bench", "--sections", "edge", "cloud", "--bundle", "b", "--sts-data", "s"])
    assert (args.sections, args.bundle, args.sts_data) == (["edge", "cloud"], "b", "s")


def test_bench_writes_the_chosen_sections_with_the_run_they_were_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, BenchRun]] = []

    def fake(name: str):
        return lambda run: seen.append((name, run)) or f"## {name} figures"

    monkeypatch.setattr(eibert.bench, "BENCH_SECTIONS", {n: fake(n) for n in BENCH_SECTIONS})
    out = tmp_path / "B.md"
    argv = ["bench", "--out", str(out), "--sections", "model", "edge", "--bundle", "b", "--sts-data", "s"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    assert cmd_bench(args) == 0
    assert [name for name, _ in seen] == ["model", "edge"]
    assert seen[0][1] == BenchRun(Path("b"), Path("s"), Path(".cache"), "eibert " + " ".join(argv))
    text = out.read_text()
    assert "<!-- bench:model -->\n## model figures\n<!-- /bench:model -->" in text and "## edge figures" in text
