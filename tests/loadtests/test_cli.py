"""`eibert bench` lives in loadtests but keeps its flags and defaults: `make bench` writes every section."""

from __future__ import annotations

from eibert.cli import build_parser
from loadtests.cli import BENCH_SECTIONS, DEFAULT_CACHE, cmd_bench
from model_store.shipped import SHIPPED_BUNDLE


def test_bench_flags_and_defaults() -> None:
    args = build_parser().parse_args(["bench", "--out", "BENCHMARKS.md"])
    assert args.func is cmd_bench
    assert args.sections == list(BENCH_SECTIONS) == ["teacher", "model", "edge", "cloud", "serving"]
    assert (args.out, args.bundle, args.cache, args.sts_data) == ("BENCHMARKS.md", str(SHIPPED_BUNDLE), ".cache", None)
    assert SHIPPED_BUNDLE.is_dir() and str(DEFAULT_CACHE) == ".cache"
    args = build_parser().parse_args(["bench", "--sections", "edge", "cloud", "--bundle", "b", "--sts-data", "s"])
    assert (args.sections, args.bundle, args.sts_data) == (["edge", "cloud"], "b", "s")
