"""`eibert bench`: measured figures written into BENCHMARKS.md, one replaceable section per benchmark.

This package assembles the command from each part's `BENCH_SECTIONS` (the model's teacher and model sections
from `model_store.cli`, the HTTP services' edge, cloud and serving sections from `loadtests.sections`), so the
parts stay peers: neither knows the other's sections, and only this layer knows both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import loadtests.sections
import model_store.cli
from model_store.shipped import SHIPPED_BUNDLE
from service.devstack.bench_file import BenchRun, Section, command_line, write_section

# The order `make bench` writes them in: the model first, then the services that serve it.
BENCH_SECTIONS: dict[str, Section] = {**model_store.cli.BENCH_SECTIONS, **loadtests.sections.BENCH_SECTIONS}
DEFAULT_CACHE = Path(".cache")  # the teacher's ONNX export, reused across runs


def cmd_bench(args: argparse.Namespace) -> int:
    run = BenchRun(
        bundle=Path(args.bundle),
        sts_data=Path(args.sts_data) if args.sts_data else model_store.cli.default_sts_dev(),
        cache=Path(args.cache),
        command=command_line(args),
    )
    out = Path(args.out)
    for name in args.sections:
        write_section(out, name, BENCH_SECTIONS[name](run))
        print(f"wrote section {name!r} to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register bench on the root parser."""
    be = sub.add_parser("bench", help="run benchmarks; writes BENCHMARKS.md sections")
    be.add_argument("--out", default="BENCHMARKS.md")
    be.add_argument("--sections", nargs="+", default=list(BENCH_SECTIONS), choices=list(BENCH_SECTIONS))
    be.add_argument("--bundle", default=str(SHIPPED_BUNDLE), help="bundle for the model, edge and serving sections")
    be.add_argument("--sts-data", help="STS-B file for the quality column (default: sts-dev)")
    be.add_argument("--cache", default=str(DEFAULT_CACHE))
    be.set_defaults(func=cmd_bench)
