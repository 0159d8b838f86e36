"""The cloud's subcommands: `eibert cloud`, `eibert publish`, `eibert rollout {show,set,rollback}`, `eibert keygen`,
`eibert enrolment-tokens {issue,list,revoke}`, `eibert devices revoke`, `eibert keys rotate`.

`add_parser(subparsers)` registers them on the root parser (`eibert/cli.py`); `python -m service.cloud` serves
the cloud with the flags of `eibert cloud` (what the demo and the load tests start). Handlers import the web
stack only when they run. Admin commands read the token from `EIBERT_ADMIN_TOKEN` and talk to the cloud through
`service.common.cloud_admin.CloudAdmin`; each prints its result as one JSON line on stdout (for scripts), and
diagnostics go to logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.common.errors import EibertError

if TYPE_CHECKING:  # the handler imports it when it runs: `eibert --help` stays light
    from service.cloud.config import Settings

log = logging.getLogger(__name__)

__all__ = [
    "add_parser",
    "cmd_cloud",
    "cmd_devices",
    "cmd_enrolment_tokens",
    "cmd_keygen",
    "cmd_keys",
    "cmd_publish",
    "cmd_rollout",
    "main",
]


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

    et = sub.add_parser(
        "enrolment-tokens",
        help="issue, list or revoke the tokens devices enrol with (token: EIBERT_ADMIN_TOKEN)",
        description="Devices enrol (POST /v1/devices) only with an operator-issued enrolment token. Each token "
        "enrols at most --max-devices devices before it expires; the cloud stores only its sha256, which is its "
        "id in listings and revocation. Revoking a token stops further enrolments with it at once, on every "
        "replica; devices it already enrolled keep working until revoked with `eibert devices revoke`.",
    )
    esub = et.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = esub.add_parser("issue", help="a new token, printed once as JSON (token, id, expiry)")
    issue.add_argument("--max-devices", type=int, required=True, help="how many devices it may enrol")
    issue.add_argument("--expires-in", type=int, default=7 * 86400, metavar="SECONDS", help="default: 7 days")
    issue.add_argument("--label", default="", help="a note for your records (letters, digits, ' _.:-')")
    listing = esub.add_parser("list", help="every token issued: id, label, quota, used, expiry, revoked")
    revoke = esub.add_parser("revoke", help="no further enrolment with the token of this id")
    revoke.add_argument("id", help="the token's id (its sha256, from `issue` or `list`)")
    for p in (issue, listing, revoke):
        p.add_argument("--cloud", required=True, help="cloud base URL")
    et.set_defaults(func=cmd_enrolment_tokens)

    dv = sub.add_parser(
        "devices",
        help="revoke an enrolled device (token: EIBERT_ADMIN_TOKEN)",
        description="A revoked device's token stops working at once on every replica (it is removed from the "
        "shared store); its id stays taken, so it cannot enrol again under it. Device tokens also expire on "
        "their own (EIBERT_CLOUD_DEVICE_TOKEN_TTL_S) unless the device renews its token first.",
    )
    dsub = dv.add_subparsers(dest="action", required=True, metavar="ACTION")
    drev = dsub.add_parser("revoke", help="the device's token stops working at once")
    drev.add_argument("device_id")
    drev.add_argument("--cloud", required=True, help="cloud base URL")
    dv.set_defaults(func=cmd_devices)

    ks = sub.add_parser(
        "keys",
        help="rotate the cloud's signing key (token: EIBERT_ADMIN_TOKEN)",
        description="Signs, on this machine, a statement naming NEW as the successor of OLD (the key the cloud "
        "signs with now) for the cloud's deployment, signed by both keys, and adds it to the cloud's rotation "
        "chain. Then restart every replica with NEW (EIBERT_CLOUD_SIGNING_KEY_FILE): a replica still holding "
        "OLD refuses to start. Devices follow the chain when an offer no longer verifies with the key they "
        "trust, and refuse any rotation OLD did not sign. Make NEW with `eibert keygen`.",
    )
    ksub = ks.add_subparsers(dest="action", required=True, metavar="ACTION")
    rot = ksub.add_parser("rotate", help="add the rotation OLD -> NEW to the cloud's chain")
    rot.add_argument("--old", required=True, help="PEM of the key the cloud signs with now")
    rot.add_argument("--new", required=True, help="PEM of its successor (eibert keygen --out NEW)")
    rot.add_argument("--cloud", required=True, help="cloud base URL")
    ks.set_defaults(func=cmd_keys)


def _add_cloud_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help="redis://... or sqlite:///... (default: embedded SQLite)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--dev", action="store_true", help="generate a signing key and admin token under the data dir (demo only)"
    )


def _settings_from(args: argparse.Namespace) -> Settings:
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
    from service.common.cloud_admin import ADMIN_TOKEN_ENV, admin_token_from_env

    token = admin_token_from_env()
    if not token:
        raise EibertError(f"{ADMIN_TOKEN_ENV} is not set: this command needs the cloud's admin token")
    return token


def _print(result: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(result) + "\n")  # the command's result, for scripts; not a log line


def cmd_publish(args: argparse.Namespace) -> int:
    from service.common.cloud_admin import publish_bundle

    body = publish_bundle(Path(args.bundle), args.cloud, _admin_token())
    _print({k: body[k] for k in ("version", "bundle_sha256", "bundle_bytes", "model_bytes", "created")})
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from service.common.cloud_admin import CloudAdmin

    with CloudAdmin(args.cloud, _admin_token()) as admin:
        if args.action == "show":
            _print(admin.rollout())
        elif args.action == "set":
            _print(admin.set_rollout(args.version, args.percent))
        else:
            _print(admin.rollback())
    return 0


def cmd_enrolment_tokens(args: argparse.Namespace) -> int:
    from service.common.cloud_admin import CloudAdmin

    with CloudAdmin(args.cloud, _admin_token()) as admin:
        if args.action == "issue":
            _print(admin.create_enrolment_token(args.max_devices, args.expires_in, args.label))
        elif args.action == "list":
            _print(admin.enrolment_tokens())
        else:
            admin.revoke_enrolment_token(args.id)
            _print({"revoked": args.id})
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from service.common.cloud_admin import CloudAdmin

    with CloudAdmin(args.cloud, _admin_token()) as admin:
        admin.revoke_device(args.device_id)
        _print({"revoked": args.device_id})
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Sign the rotation OLD -> NEW here (private keys never leave this machine) and add it to the chain."""
    import time

    from service.common.cloud_admin import CloudAdmin
    from service.common.key_rotation import sign_rotation
    from service.common.signing import private_key_from_pem, public_key_to_b64

    old = private_key_from_pem(Path(args.old).read_bytes())
    new = private_key_from_pem(Path(args.new).read_bytes())
    with CloudAdmin(args.cloud, _admin_token()) as admin:
        current = admin.signing_key()
        if current["public_key"] != public_key_to_b64(old.public_key()):
            raise EibertError(f"the cloud signs with {current['public_key']}, not with the key in {args.old}")
        statement = sign_rotation(
            old, new, version=current["key_version"] + 1, deployment=current["deployment"], issued=int(time.time())
        )
        _print(admin.add_rotation(statement))
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
