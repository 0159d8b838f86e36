"""The flags of `eibert simulate`, apart from the code that acts on them.

Kept free of any import beyond argparse and os because the main `eibert` parser is built for every
subcommand: `eibert build` must not load the simulator's web and model stack just to parse its own flags.

Environment variables mirror some flags (a flag given on the command line wins):
EIBERT_SIM_CLOUD, EIBERT_SIM_EDGE (comma-separated URLs), EIBERT_SIM_DEVICES, EIBERT_SIM_DAYS, EIBERT_SIM_SEED,
EIBERT_SIM_FAULTS, EIBERT_SIM_STATE_DIR, EIBERT_SIM_ENROLMENT_TOKEN_FILE,
EIBERT_SIM_ROLLOUT_BUNDLE. The admin token (to issue the fleet's
enrolment token and to advance a dev-mode cloud's clock) comes from EIBERT_ADMIN_TOKEN, as for `eibert publish`.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_DEVICES = 200
DEFAULT_DAYS = 3
DEFAULT_POLL_HOURS = 6
# `eibert demo`'s fleet: big enough that every metric releases a 95% interval narrower than 0.2 (a binary metric
# at epsilon 0.4 needs about 2,500 reports in one version-day group for that; the rollout leaves day 2 on one
# version), small enough to run in a few minutes on 2 cores.
DEMO_DEVICES = 3000
DEMO_DAYS = 2
# users of the demo's position-bias experiment (two simulated weeks in process; about 25 s on 2 cores)
DEMO_POSITION_USERS = 100


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag `simulators.cli.cmd_simulate` reads."""
    cloud = os.environ.get("EIBERT_SIM_CLOUD")
    edges = [u for u in os.environ.get("EIBERT_SIM_EDGE", "").split(",") if u]
    parser.add_argument("--cloud", default=cloud, required=cloud is None, help="cloud base URL (required)")
    parser.add_argument(
        "--edge",
        action="append",
        default=None,
        help="edge node base URL; repeatable. Given: devices rank over HTTP (POST /v1/rank), round-robin",
    )
    parser.set_defaults(edge_env=edges)
    parser.add_argument(
        "--edge-devices",
        type=int,
        default=None,
        help="how many devices rank through --edge nodes (default: all when --edge is given); the rest in-process",
    )
    parser.add_argument("--bundle", default=None, help="starting bundle of in-process devices (default: shipped)")
    parser.add_argument(
        "--rollout-bundle",
        default=os.environ.get("EIBERT_SIM_ROLLOUT_BUNDLE"),
        help="publish this bundle during the run and roll it out 10%% -> 100%% (needs EIBERT_ADMIN_TOKEN)",
    )
    parser.add_argument("--devices", type=int, default=_env_int("EIBERT_SIM_DEVICES", DEFAULT_DEVICES))
    parser.add_argument(
        "--days", type=int, default=_env_int("EIBERT_SIM_DAYS", DEFAULT_DAYS), help="simulated days (default 3)"
    )
    parser.add_argument("--seed", type=int, default=_env_int("EIBERT_SIM_SEED", 0))
    parser.add_argument(
        "--faults",
        default=os.environ.get("EIBERT_SIM_FAULTS", ""),
        help="comma list of drop[:p], delay[:p], bitflip[:n], truncate[:n], cloud-restart (e.g. drop:0.02,bitflip:1)",
    )
    parser.add_argument("--cloud-public-key", default=None, help="base64 Ed25519 key to pin (default: fetched once)")
    parser.add_argument("--summary-json", default=None, help="also write the summary as JSON to this path")
    parser.add_argument(
        "--state-dir", default=os.environ.get("EIBERT_SIM_STATE_DIR"), help="outboxes etc. (default: a temp dir)"
    )
    parser.add_argument(
        "--enrolment-token-file",
        default=os.environ.get("EIBERT_SIM_ENROLMENT_TOKEN_FILE"),
        help="file holding an operator-issued enrolment token (default: issue one with EIBERT_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--poll-hours",
        type=int,
        default=DEFAULT_POLL_HOURS,
        help="simulated hours between a device's update checks (default 6)",
    )
