"""`eibert`: the one command line.

This module is the composition root: it dispatches to model_store (build, eval, bench), service (edge,
cloud) and simulators, importing each lazily inside its handler so that, for example, `eibert edge` on a slim
image never imports torch. It lives in model_store because model_store is the package allowed to depend on
service; nothing in service/ imports it. Subcommands whose issue has not landed say so and exit 2.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from service.common.errors import EibertError
from service.edge.cli_args import add_edge_arguments  # argparse only: no web or model stack imported
from simulators.cli_args import add_simulate_arguments  # argparse only, likewise

EXIT_NOT_AVAILABLE = 2
DEFAULT_CACHE = Path(".cache")
SHIPPED_BUNDLE = Path(__file__).resolve().parent / "bundles" / "eibert-0.3.0"
BENCH_SECTIONS = ("teacher", "model", "edge", "cloud")


class CliError(Exception):
    """A user-facing failure: printed as one line on stderr, exit code 1."""


def _service(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A handler imported only when its command runs, so each command loads just its own stack."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), name)(args))

    return handler


def _needs_train_extra(exc: ImportError) -> CliError:
    return CliError(f"{exc.name or 'a training package'} is not installed: pip install 'eibert[train]'")


def _default_sts_dev() -> Path:
    from model_store.data.paths import data_file

    return data_file("stsb", "sts-dev.csv.gz")


def cmd_eval_sts(args: argparse.Namespace) -> int:
    try:
        from model_store.encoders import load_encoder
        from model_store.eval_sts import evaluate_sts_file
    except ImportError as exc:
        raise _needs_train_extra(exc) from exc
    data = Path(args.data) if args.data else _default_sts_dev()
    encoder = load_encoder(args.bundle, threads=args.threads)
    result = evaluate_sts_file(encoder, data)
    print(json.dumps({"bundle": str(args.bundle), "data": str(data), **result.model_dump()}))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    try:
        from model_store.build import cmd_build as run_build
    except ImportError as exc:
        raise _needs_train_extra(exc) from exc
    return run_build(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from model_store.benchmarks import bench_model, bench_teacher, write_section

    data = Path(args.sts_data) if args.sts_data else _default_sts_dev()
    command = "eibert " + " ".join(shlex.quote(a) for a in args.argv)
    out = Path(args.out)
    for section in args.sections:
        if section == "teacher":
            body = bench_teacher(data, Path(args.cache), command.strip())
        elif section == "model":
            body = bench_model(Path(args.bundle), data, Path(args.cache), command.strip())
        elif section == "cloud":
            from model_store.bench_cloud import bench_cloud

            body = bench_cloud(command.strip())
        elif section == "edge":
            from model_store.bench_edge import bench_edge

            body = bench_edge(Path(args.bundle), command.strip())
        else:  # argparse restricts choices; kept for when sections are added
            raise CliError(f"unknown bench section {section}")
        write_section(out, section, body)
        print(f"wrote section {section!r} to {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Cloud, an edge node and a device fleet on one machine (simulators/demo.py); exit 0 iff its checks held."""
    from simulators.demo import cmd_demo as run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eibert", description="On-device recommendation features from a tiny BERT.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="run the compression pipeline; writes a bundle and a report")
    b.add_argument("--config", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--quick", action="store_true")
    b.add_argument("--resume", action="store_true", help="continue interrupted training from its checkpoint")
    b.add_argument("--force", action="store_true", help="write into a non-empty --out")
    b.add_argument("--skip-ablations", action="store_true", help="train only the shipped variant (fast iteration)")
    b.add_argument("--cache", default=str(DEFAULT_CACHE / "build"), help="stage cache directory")
    b.add_argument("--sts-data", help="STS-B file used to score candidates (default: sts-dev)")
    b.add_argument("--rank-data", help="MovieLens directory for the rank evaluation (default: the shared data)")
    b.set_defaults(func=cmd_build)

    e = sub.add_parser("eval", help="evaluate the teacher or a bundle")
    esub = e.add_subparsers(dest="task", required=True, metavar="TASK")
    sts = esub.add_parser("sts", help="STS Spearman x100 of cosine vs gold; prints one JSON line")
    sts.add_argument("--bundle", required=True, help="'teacher' or a bundle directory")
    sts.add_argument("--data", help="STS-B original-format file (default: sts-dev under the data root)")
    sts.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    sts.set_defaults(func=cmd_eval_sts)
    rank = esub.add_parser("rank", help="MovieLens next-item ranking: HR@10, NDCG@10")
    rank.add_argument("--bundle", required=True)
    rank.add_argument("--movies", required=True)
    rank.add_argument("--ratings", required=True)
    rank.add_argument("--tags")
    rank.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    rank.set_defaults(func=_service("model_store.eval_rank", "cmd_eval_rank"))

    ed = sub.add_parser("edge", help="serve an edge node")
    ed.add_argument("--bundle", required=True)
    ed.add_argument("--cloud")
    ed.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    add_edge_arguments(ed)
    ed.set_defaults(func=_service("service.edge.cli", "cmd_edge"))

    c = sub.add_parser("cloud", help="serve the cloud API")
    c.add_argument("--store", default=None, help="redis://... or sqlite:///... (default: embedded SQLite)")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument(
        "--dev", action="store_true", help="generate a signing key and admin token under the data dir (demo only)"
    )
    c.set_defaults(func=_service("service.cloud.cli", "cmd_cloud"))

    pub = sub.add_parser("publish", help="upload a bundle as a new model version")
    pub.add_argument("--bundle", required=True)
    pub.add_argument("--cloud", required=True)
    pub.set_defaults(func=_service("service.cloud.cli", "cmd_publish"))

    sim = sub.add_parser("simulate", help="run a device fleet against a cloud (and edge nodes)")
    add_simulate_arguments(sim)
    sim.set_defaults(func=_service("simulators.cli", "cmd_simulate"))

    d = sub.add_parser("demo", help="everything on one machine, no Docker, then a summary")
    d.add_argument("--cache", default=str(DEFAULT_CACHE), help="where the demo keeps its logs and summary.json")
    d.add_argument("--devices", type=int, default=300, help="simulated devices (default 300)")
    d.add_argument("--days", type=int, default=4, help="simulated days (default 4)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=cmd_demo)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except (CliError, EibertError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"eibert: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"eibert: error: {_needs_train_extra(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
