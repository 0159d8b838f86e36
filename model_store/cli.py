"""The model pipeline's subcommands, `eibert build` and `eibert eval {sts,rank,glue,basket}`, and its `eibert bench`
sections (`BENCH_SECTIONS`: teacher, model), which `eibert/bench.py` assembles with the HTTP services' own.

`add_parser(subparsers)` registers them on the root parser (`eibert/cli.py`). Handlers import the training
stack (torch, transformers) only when they run, so building the root parser stays light.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from model_store.ranker_cli import add_eval_basket_parser, add_ranker_parser
from service.common.errors import EibertError
from service.devstack.bench_file import BenchRun, Section

DEFAULT_CACHE = Path(".cache")


class CliError(EibertError):
    """A user-facing failure: printed as one line on stderr, exit code 1."""


def missing_extra(exc: ImportError) -> CliError:
    return CliError(f"{exc.name or 'a training package'} is not installed: pip install 'eibert[train]'")


def default_sts_dev() -> Path:
    """STS-B dev under the data root: the default data of `eval sts`, the build's scoring and `bench`."""
    from model_store.data.paths import data_file

    return data_file("stsb", "sts-dev.csv.gz")


def cmd_eval_sts(args: argparse.Namespace) -> int:
    try:
        from model_store.encoders import load_encoder
        from model_store.eval_sts import evaluate_sts_file
    except ImportError as exc:
        raise missing_extra(exc) from exc
    data = Path(args.data) if args.data else default_sts_dev()
    encoder = load_encoder(args.bundle, threads=args.threads)
    result = evaluate_sts_file(encoder, data)
    print(json.dumps({"bundle": str(args.bundle), "data": str(data), **result.model_dump()}))
    return 0


def default_glue_dir() -> Path:
    from model_store.data.paths import data_file

    return data_file("glue")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_eval_glue(args: argparse.Namespace) -> int:
    try:
        from model_store.encoders import TEACHER_SPEC, load_encoder
        from model_store.eval_glue import compare, evaluate_glue
    except ImportError as exc:
        raise missing_extra(exc) from exc
    data = Path(args.data) if args.data else default_glue_dir()
    if not data.is_dir():
        raise CliError(f"--data {data}: not a directory (a GLUE folder with <TASK>/train.tsv.gz and dev.tsv.gz)")
    scores = evaluate_glue(load_encoder(args.bundle, threads=args.threads), data, limit=args.limit)
    out: dict = {"bundle": str(args.bundle), "data": str(data), **scores.model_dump()}
    if args.with_teacher and str(args.bundle) != TEACHER_SPEC:
        teacher = evaluate_glue(load_encoder(TEACHER_SPEC, threads=args.threads), data, limit=args.limit)
        out |= compare(scores, teacher).model_dump(exclude={"student"})
    print(json.dumps(out))
    return 0


def cmd_eval_obd(args: argparse.Namespace) -> int:
    """One JSON line; needs the `obp` package, which `make venv` does not install (model_store/eval_obd.py)."""
    from model_store.eval_obd import main

    try:
        return main()
    except ModuleNotFoundError as exc:
        if exc.name != "obp":
            raise
        raise CliError(
            "obp is not installed, and its metadata refuses Python 3.11: model_store/eval_obd.py "
            "says how to install it beside the venv"
        ) from None


def cmd_eval_rank(args: argparse.Namespace) -> int:
    from model_store.eval_rank import run_eval_rank

    return run_eval_rank(args)


def cmd_build(args: argparse.Namespace) -> int:
    try:
        from model_store.build import run_build
    except ImportError as exc:
        raise missing_extra(exc) from exc
    return run_build(args)


def teacher_section(run: BenchRun) -> str:
    from model_store.benchmarks import bench_teacher

    return bench_teacher(run.sts_data, run.cache, run.command)


def model_section(run: BenchRun) -> str:
    from model_store.benchmarks import bench_model

    return bench_model(run.bundle, run.sts_data, run.cache, run.command)


BENCH_SECTIONS: dict[str, Section] = {"teacher": teacher_section, "model": model_section}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register build and eval on the root parser."""
    b = sub.add_parser("build", help="run the compression pipeline; writes a bundle and a report")
    b.add_argument("--config", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--quick", action="store_true")
    b.add_argument("--resume", action="store_true", help="continue interrupted training from its checkpoint")
    b.add_argument("--force", action="store_true", help="write into a non-empty --out")
    b.add_argument("--skip-ablations", action="store_true", help="train only the shipped variant (fast iteration)")
    b.add_argument("--skip-anchors", action="store_true", help="leave out the config's anchor rows (Model2Vec, ...)")
    b.add_argument("--cache", default=str(DEFAULT_CACHE / "build"), help="stage cache directory")
    b.add_argument("--sts-data", help="STS-B file used to score candidates (default: sts-dev)")
    b.add_argument("--rank-data", help="MovieLens directory for the rank evaluation (default: the shared data)")
    b.add_argument("--glue-data", help="GLUE directory for the frozen probes (default: the shared data's glue/)")
    b.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the teacher targets and training run (auto: CUDA when torch sees it)")  # fmt: skip
    b.set_defaults(func=cmd_build)

    e = sub.add_parser("eval", help="evaluate the teacher or a bundle")
    esub = e.add_subparsers(dest="task", required=True, metavar="TASK")
    sts = esub.add_parser("sts", help="STS Spearman x100 of cosine vs gold; prints one JSON line")
    sts.add_argument("--bundle", required=True, help="'teacher' or a bundle directory")
    sts.add_argument("--data", help="STS-B original-format file (default: sts-dev under the data root)")
    sts.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    sts.set_defaults(func=cmd_eval_sts)
    glue = esub.add_parser(
        "glue", help="GLUE frozen probes (CoLA, SST-2, MRPC, RTE): logistic regression on embeddings; one JSON line"
    )
    glue.add_argument("--bundle", required=True, help="'teacher' or a bundle directory")
    glue.add_argument(
        "--data", help="GLUE directory: <TASK>/train.tsv.gz and dev.tsv.gz (default: glue under the data root)"
    )
    glue.add_argument(
        "--with-teacher", action="store_true", help="score the teacher too; print its scores and the shares"
    )
    glue.add_argument("--limit", type=positive_int, help="at most this many rows per task and split (smoke runs)")
    glue.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    glue.set_defaults(func=cmd_eval_glue)
    rank = esub.add_parser("rank", help="MovieLens next-item ranking: HR@10, NDCG@10")
    rank.add_argument("--bundle", required=True)
    rank.add_argument("--movies", required=True)
    rank.add_argument("--ratings", required=True)
    rank.add_argument("--tags")
    rank.add_argument("--ranker", help="a ranker.json to evaluate too (default: the bundle's own, if any)")
    rank.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    rank.set_defaults(func=cmd_eval_rank)
    obd = esub.add_parser(
        "obd", help="the edge's IPW estimator on the Open Bandit Dataset sample vs its published figure (needs obp)"
    )
    obd.set_defaults(func=cmd_eval_obd)
    add_eval_basket_parser(esub)
    add_ranker_parser(sub)
