"""`eibert edge --bundle DIR [--cloud URL] [--port N] ...`: serve one edge node with uvicorn.

Flags override `EIBERT_EDGE_*` environment variables, which override the defaults in `EdgeSettings`. The
bundle is verified before the server starts, so a bad bundle is one clear error line and exit status 1
(raised as BundleError for the CLI's handler) rather than a uvicorn startup traceback.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from service.common.errors import EibertError
from service.edge.cli_args import EPILOG, FLAG_FIELDS, add_edge_arguments

if TYPE_CHECKING:
    from service.edge.config import EdgeSettings

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `eibert edge` on the root parser (flags only: the web and model stack load when it runs)."""
    ed = sub.add_parser(
        "edge",
        help="serve an edge node",
        description="Serve an edge node: /v1/encode, /v1/embeddings, /v1/rank, /v1/model, /readyz, /metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(ed)
    ed.set_defaults(func=cmd_edge)


def _add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="the bundle served at start (the factory bundle)")
    parser.add_argument("--cloud", help="cloud base URL: enrol, follow its signed rollout, send LDP telemetry")
    parser.add_argument("--port", type=int, default=None, help="listen port (default 8080)")
    add_edge_arguments(parser)


def settings_from_args(args: argparse.Namespace) -> EdgeSettings:
    from pydantic import ValidationError

    from service.edge.config import EdgeSettings

    overrides = {f: getattr(args, a) for a, f in FLAG_FIELDS.items() if getattr(args, a, None) is not None}
    if getattr(args, "batching", False):
        overrides["batching"] = True
    if getattr(args, "no_batching", False):
        overrides["batching"] = False
    try:
        return EdgeSettings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"invalid edge settings: {where + ': ' if where else ''}{msg}") from None


def limit_blas_threads(n: int) -> None:
    """Cap numpy's BLAS pool for this process (the server owns its process; an app never does this itself)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")  # stays in force: the returned context is not exited


def cmd_edge(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns uvicorn's outcome as an exit status."""
    import uvicorn

    from service.common.http_server import http_server_options
    from service.common.manifest import verify_bundle
    from service.edge.app import create_app

    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_blas_threads(settings.blas_threads)
    manifest = verify_bundle(settings.bundle)  # BundleError -> one line from the CLI, before any socket opens
    log.info("serving %s on %s:%d", manifest.release_id, settings.host, settings.port)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # per-request logs would cost more than /v1/encode itself; /metrics has the counts
        **http_server_options(settings.server_limits()),  # trusted proxies only; request read deadlines
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m service.edge`), with the same flags as `eibert edge`: what the demo, the
    load tests and the benchmarks start, so that nothing below the CLI package spawns the CLI."""
    parser = argparse.ArgumentParser(
        prog="eibert-edge",
        description="serve an eibert edge node",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_flags(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_edge(args)
    except (EibertError, ValueError, OSError) as exc:  # bad bundle, bad settings: one line, no traceback
        log.error("eibert edge: error: %s", exc)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
