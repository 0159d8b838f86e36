"""`eibert bench`: measured figures written into BENCHMARKS.md, one replaceable section per benchmark.

The model's sections (teacher, model) come from `model_store.benchmarks`; the HTTP services' sections (edge,
cloud, serving) from this package, which starts the servers it measures. `add_parser(subparsers)` registers the
command on the root parser (`eibert/cli.py`); the handler imports each section's stack only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model_store.shipped import SHIPPED_BUNDLE
from service.common.errors import EibertError

BENCH_SECTIONS = ("teacher", "model", "edge", "cloud", "serving")
DEFAULT_CACHE = Path(".cache")  # the teacher's ONNX export, reused across runs


def sts_dev() -> Path:
    """STS-B dev under the data root: the quality column of the teacher and model sections."""
    from model_store.data import data_file

    return data_file("stsb", "sts-dev.csv.gz")


def cmd_bench(args: argparse.Namespace) -> int:
    from loadtests.bench_file import command_line, write_section

    data = Path(args.sts_data) if args.sts_data else sts_dev()
    command = command_line(args)
    out = Path(args.out)
    for section in args.sections:
        if section == "teacher":
            from model_store.benchmarks import bench_teacher

            body = bench_teacher(data, Path(args.cache), command)
        elif section == "model":
            from model_store.benchmarks import bench_model

            body = bench_model(Path(args.bundle), data, Path(args.cache), command)
        elif section == "cloud":
            from loadtests.bench_cloud import bench_cloud

            body = bench_cloud(command)
        elif section == "edge":
            from loadtests.bench_edge import bench_edge

            body = bench_edge(Path(args.bundle), command)
        elif section == "serving":
            from loadtests.bench_serving import bench_serving

            body = bench_serving(Path(args.bundle), command)
        else:  # argparse restricts choices; kept for when sections are added
            raise EibertError(f"unknown bench section {section}")
        write_section(out, section, body)
        print(f"wrote section {section!r} to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register bench on the root parser."""
    be = sub.add_parser("bench", help="run benchmarks; writes BENCHMARKS.md sections")
    be.add_argument("--out", default="BENCHMARKS.md")
    be.add_argument(
        "--sections",
        nargs="+",
        default=list(BENCH_SECTIONS),
        choices=list(BENCH_SECTIONS),
    )
    be.add_argument("--bundle", default=str(SHIPPED_BUNDLE), help="bundle for the model section")
    be.add_argument("--sts-data", help="STS-B file for the quality column (default: sts-dev)")
    be.add_argument("--cache", default=str(DEFAULT_CACHE))
    be.set_defaults(func=cmd_bench)
