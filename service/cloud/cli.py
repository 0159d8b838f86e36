"""The cloud's subcommands: `eibert cloud`, `eibert publish`, `eibert rollout {show,set,rollback}`, `eibert keygen`.

`add_parser(subparsers)` registers them on the root parser (`eibert/cli.py`); `python -m service.cloud` serves
the cloud with the flags of `eibert cloud` (what the demo and the load tests start). Handlers import the web
stack only when they run. Admin commands read the token from `EIBERT_ADMIN_TOKEN` and talk to the cloud through
`service.cloud.client.CloudAdmin`; each prints its result as one JSON line on stdout (for scripts), and
diagnostics go to logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from service.common.errors import EibertError

log = logging.getLogger(__name__)

__all__ = ["add_parser", "cmd_cloud", "cmd_keygen", "cmd_publish", "cmd_rollout", "main"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("cloud", help="serve the cloud API")
    _add_cloud_flags(c)
    c.set_defaults(func=cmd_cloud)

    pub = sub.add_parser("publish", help="upload a bundle as a new model version (token: EIBERT_ADMIN_TOKEN)")
    pub.add_argument("--bundle", required=True)
    pub.add_argument("--cloud", required=True)
    pub.set_defaults(func=cmd_publish)

    ro = sub.add_parser("rollout", help="show or change the staged rollout (token: EIBERT_ADMIN_TOKEN)")
    rsub = ro.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = rsub.add_parser("show", help="the current rollout state")
    put = rsub.add_parser("set", help="send PERCENT of devices to VERSION (100 makes it the stable version)")
    put.add_argument("version")
    put.add_argument("percent", type=int)
    back = rsub.add_parser("rollback", help="cancel the canary, else return to the previous stable version")
    for p in (show, put, back):
        p.add_argument("--cloud", required=True, help="cloud base URL")
    ro.set_defaults(func=cmd_rollout)

    kg = sub.add_parser("keygen", help="write an Ed25519 signing key for the cloud; prints the key devices pin")
    kg.add_argument("--out", required=True, help="PEM file to create (0600; an existing file is never replaced)")
    kg.set_defaults(func=cmd_keygen)


def _add_cloud_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help="redis://... or sqlite:///... (default: embedded SQLite)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--dev", action="store_true", help="generate a signing key and admin token under the data dir (demo only)"
    )


def _settings_from(args: argparse.Namespace):  # -> Settings
    from service.cloud.config import Settings

    overrides: dict[str, Any] = {}
    if getattr(args, "store", None):
        overrides["store_url"] = args.store
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "dev", False):
        overrides["dev_mode"] = True
    return Settings(**overrides)


def cmd_cloud(args: argparse.Namespace) -> int:
    """Serve the cloud API with uvicorn (one worker; run more processes behind a balancer with Redis)."""
    import uvicorn
    from pydantic import ValidationError

    from service.cloud.app import create_app
    from service.common.http_server import http_server_options

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings_from(args)
    except ValidationError as exc:
        log.error("cloud settings are invalid: %s", "; ".join(e["msg"] for e in exc.errors()))
        return 2
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        **http_server_options(settings.server_limits()),  # trusted proxies only; request read deadlines
    )
    return 0


def _admin_token() -> str:
    token = os.environ.get("EIBERT_ADMIN_TOKEN", "")
    if not token:
        raise EibertError("EIBERT_ADMIN_TOKEN is not set: this command needs the cloud's admin token")
    return token


def _print(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")  # the command's result, for scripts; not a log line


def cmd_publish(args: argparse.Namespace) -> int:
    from service.cloud.client import publish_bundle

    body = publish_bundle(Path(args.bundle), args.cloud, _admin_token())
    _print({k: body[k] for k in ("version", "bundle_sha256", "bundle_bytes", "model_bytes", "created")})
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from service.cloud.client import CloudAdmin

    with CloudAdmin(args.cloud, _admin_token()) as admin:
        if args.action == "show":
            _print(admin.rollout())
        elif args.action == "set":
            _print(admin.set_rollout(args.version, args.percent))
        else:
            _print(admin.rollback())
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """A production cloud refuses to start without a signing key; this makes one (EIBERT_CLOUD_SIGNING_KEY_FILE)
    and prints the public half that edge nodes pin (EIBERT_EDGE_CLOUD_PUBLIC_KEY)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from service.cloud.keys import write_private
    from service.common.signing import private_key_to_pem, public_key_to_b64

    out = Path(args.out)
    key = Ed25519PrivateKey.generate()
    write_private(out, private_key_to_pem(key))  # O_EXCL + 0600: never replaces a key devices already pin
    _print({"signing_key_file": str(out), "public_key": public_key_to_b64(key.public_key())})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (`python -m service.cloud`), with the flags of `eibert cloud`."""
    parser = argparse.ArgumentParser(prog="eibert-cloud", description="serve the eibert cloud API")
    _add_cloud_flags(parser)
    return cmd_cloud(parser.parse_args(argv))
