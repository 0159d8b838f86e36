"""`eibert`: the root parser. Each part owns its subcommands (`add_parser(subparsers)` in its own `cli.py`);
this module only assembles them, runs the chosen handler and turns expected failures into one line on stderr.

Every part's `cli.py` imports nothing heavy at module level (handlers import their stack when they run), so
`eibert edge` on a slim image never imports torch and `eibert --help` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import eibert.bench
import model_store.cli
import service.cloud.cli
import service.edge.cli
import simulators.cli
from service.common.errors import EibertError

# The order of `eibert --help`: pipeline first, then the services, then the tools that drive and measure them
# (`eibert bench` is assembled here, from the sections of the model pipeline and of the HTTP services).
PARTS = (model_store.cli, service.edge.cli, service.cloud.cli, simulators.cli, eibert.bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eibert", description="On-device recommendation features from a tiny BERT.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for part in PARTS:
        part.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except (EibertError, FileNotFoundError, FileExistsError, PermissionError, ValueError) as exc:
        print(f"eibert: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"eibert: error: {model_store.cli.missing_extra(exc)}", file=sys.stderr)
        return 1
