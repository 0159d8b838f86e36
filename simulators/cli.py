"""`eibert simulate`: run a device fleet against a cloud (and edge nodes), print a timeline and a summary.

Flags are defined in `simulators/cli_args.py` (argparse only, so the main parser stays light); this module
imports the fleet's stack (onnxruntime, httpx, the data loaders) only inside `cmd_simulate`. The timeline goes
to stdout as it happens and the summary at the end; both are the command's output, not log lines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from simulators.cli_args import DEMO_DAYS, DEMO_DEVICES, DEMO_POSITION_USERS, add_simulate_arguments

__all__ = [
    "add_parser",
    "add_simulate_arguments",
    "cmd_bench_fleet",
    "cmd_demo",
    "cmd_position_bias",
    "cmd_simulate",
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `eibert simulate` and `eibert demo` on the root parser (flags only)."""
    sim = sub.add_parser("simulate", help="run a device fleet against a cloud (and edge nodes)")
    add_simulate_arguments(sim)
    sim.set_defaults(func=cmd_simulate)

    d = sub.add_parser("demo", help="everything on one machine, no Docker, then a summary")
    d.add_argument("--cache", default=".cache", help="where the demo keeps its logs and summary.json")
    d.add_argument("--devices", type=int, default=DEMO_DEVICES, help=f"simulated devices (default {DEMO_DEVICES})")
    d.add_argument("--days", type=int, default=DEMO_DAYS, help=f"simulated days (default {DEMO_DAYS})")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument(
        "--position-bias-users",
        type=int,
        default=DEMO_POSITION_USERS,
        help=f"users of the position-bias experiment, at most --devices (default {DEMO_POSITION_USERS}; 0: skip it)",
    )
    d.set_defaults(func=cmd_demo)

    sim = sub.add_parser("sim", help="in-process simulations that need no cloud (see `eibert simulate` for a fleet)")
    sims = sim.add_subparsers(dest="simulation", required=True, metavar="SIMULATION")
    pb = sims.add_parser(
        "position-bias",
        help="naive vs position-corrected learners over simulated weeks; prints one JSON line",
        description="Serve slates with a naive learner and PBM regression-EM learners (a fleet curve and personal "
        "curves), each refitted daily from the device's own impression log; NDCG@10 against the simulation's "
        "true relevance, and each user's examination-curve error.",
    )
    pb.add_argument("--users", type=int, default=200, help="simulated users (default 200)")
    pb.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    pb.add_argument("--seed", type=int, default=0)
    pb.add_argument("--bundle", default=None, help="bundle whose encoder embeds the items (default: shipped)")
    pb.add_argument("--learner-only", action="store_true", help="ablation: the learner alone orders the slates")
    pb.add_argument("--explore", type=float, default=0.0, help="ablation: share of sessions with a random slot")
    pb.add_argument("--prior-weight", type=float, default=0.0, help="ablation: popularity prior in the order")
    pb.set_defaults(func=cmd_position_bias)

    b = sub.add_parser(
        "bench-fleet", help="a fleet at scale against a local cloud; writes the BENCHMARKS.md fleet section"
    )
    b.add_argument("--devices", type=int, default=10_000, help="simulated devices (default 10000; 10 over HTTP)")
    b.add_argument("--days", type=int, default=2, help="simulated days (default 2)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="BENCHMARKS.md", help="file to write the section into ('' : print only)")
    b.add_argument("--profile", default=None, help="also write cProfile stats of the fleet process here")
    b.set_defaults(func=cmd_bench_fleet)


def cmd_demo(args: argparse.Namespace) -> int:
    """Cloud, an edge node and a device fleet on one machine (simulators/demo.py); exit 0 iff its checks held."""
    from simulators.demo import run_demo

    return run_demo(args)


def cmd_bench_fleet(args: argparse.Namespace) -> int:
    """The fleet benchmark (simulators/bench.py); exit 0 iff the run's checks held."""
    from simulators.bench import run_bench_fleet

    return run_bench_fleet(args)


def cmd_position_bias(args: argparse.Namespace) -> int:
    """`eibert sim position-bias`: one JSON line (simulators/position_experiment.py)."""
    from simulators.position_experiment import PositionBiasConfig, run_position_bias

    config = PositionBiasConfig(
        users=args.users,
        days=args.days,
        seed=args.seed,
        bundle=Path(args.bundle) if args.bundle else None,
        learner_only=args.learner_only,
        explore=args.explore,
        prior_weight=args.prior_weight,
    )
    _out(run_position_bias(config).model_dump_json())
    return 0


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _read_secret(path: str | None) -> str | None:
    return (Path(path).read_text(encoding="utf-8").strip() or None) if path else None


def cmd_simulate(args: argparse.Namespace) -> int:
    """Exit 0 when the fleet's own checks pass (enrolment, ranking, every corrupted download rejected), else 1."""
    import asyncio

    from model_store.shipped import SHIPPED_BUNDLE
    from service.common.cloud_admin import admin_token_from_env
    from simulators.faults import parse_faults
    from simulators.fleet import Fleet, FleetConfig
    from simulators.summary import render, write_summary

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = FleetConfig(
        cloud_url=args.cloud.rstrip("/"),
        bundle=Path(args.bundle) if args.bundle else SHIPPED_BUNDLE,
        edge_urls=args.edge or getattr(args, "edge_env", None) or [],
        edge_devices=args.edge_devices,
        devices=args.devices,
        days=args.days,
        seed=args.seed,
        faults=parse_faults(args.faults),
        cloud_public_key=args.cloud_public_key,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        poll_hours=args.poll_hours,
        admin_token=admin_token_from_env() or None,
        enrolment_token=_read_secret(args.enrolment_token_file),
    )
    events = []
    if args.rollout_bundle:
        from simulators.rollout_plan import rollout_events

        if config.admin_token is None:
            raise ValueError("--rollout-bundle publishes and rolls out: set EIBERT_ADMIN_TOKEN")
        events = rollout_events(config.cloud_url, config.admin_token, Path(args.rollout_bundle), config.days)
    summary = asyncio.run(Fleet(config, events=events, timeline=_out).run())
    _out(render(summary))
    write_summary(summary, args.summary_json)
    return 0 if all(summary.checks.values()) else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m simulators.cli`), with the same flags as `eibert simulate`."""
    parser = argparse.ArgumentParser(prog="eibert-simulate", description="run a device fleet against a cloud")
    add_simulate_arguments(parser)
    return cmd_simulate(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
