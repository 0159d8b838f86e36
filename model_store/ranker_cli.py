"""The ranker's subcommands: `eibert eval basket` and `eibert ranker build`; handlers import their modules
(numpy, torch) only when they run, so building the root parser stays light."""

from __future__ import annotations

import argparse


def cmd_eval_basket(args: argparse.Namespace) -> int:
    from model_store.eval_basket import run_eval_basket

    return run_eval_basket(args)


def cmd_ranker_build(args: argparse.Namespace) -> int:
    from model_store.ranker_build import run_ranker_build

    return run_ranker_build(args)


def cmd_ranker_report(args: argparse.Namespace) -> int:
    from model_store.ranker_report import run_ranker_report

    return run_ranker_report(args)


def add_eval_basket_parser(esub: argparse._SubParsersAction) -> None:
    p = esub.add_parser("basket", help="next-basket recommendation on order histories (Instacart format)")
    p.add_argument("--bundle", required=True, help="'teacher' or a bundle directory (its ranker.json, if any)")
    p.add_argument("--orders", required=True, help="orders file (Instacart order-lines format, .csv or .csv.gz)")
    p.add_argument("--products", required=True, help="products file (product_id, product_name, aisle, department)")
    p.add_argument("--ranker", help="a ranker.json to evaluate (default: the bundle's own)")
    p.add_argument("--seed", type=int, default=0, help="seed of the tuning/report split of users")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: library default)")
    p.set_defaults(func=cmd_eval_basket)


def add_ranker_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("ranker", help="train the learned ranker and ship it in a new bundle version")
    rsub = r.add_subparsers(dest="ranker_command", required=True, metavar="COMMAND")
    b = rsub.add_parser("build", help="train on a bundle's embeddings; write bundle + ranker.json; prints JSON")
    b.add_argument("--config", required=True, help="a ranker TOML config (model_store/configs/ranker/*.toml)")
    b.add_argument("--out", required=True, help="the new bundle directory")
    b.add_argument("--force", action="store_true", help="write into a non-empty --out")
    b.add_argument("--cache", default=".cache/ranker", help="training lists, reused across builds of one encoder")
    b.set_defaults(func=cmd_ranker_build)
    r = rsub.add_parser("report", help="rewrite a ranker bundle's report.md from its manifest")
    r.add_argument("--bundle", required=True)
    r.set_defaults(func=cmd_ranker_report)
