"""`python -m loadtests.publish [--bundle DIR] --cloud URL [--percent N]`: upload a bundle, then roll it out.

`eibert publish` only registers a version; a load test (and the docker compose stack) also needs devices to be
assigned one, so this sets the rollout after the upload (both through `service.common.cloud_admin`). The admin
token comes from `EIBERT_ADMIN_TOKEN`, or from the file named by `--admin-token-file` (the compose stack generates one).
With `--enrolment-token PATH:MAX_DEVICES` (repeatable) it also issues operator enrolment tokens, each written
0600 to PATH, for the stack's devices (edge nodes, the simulator, locust) to enrol with; without `--bundle` it
only issues those tokens (what the README's production path uses until `eibert` has a verb for it).
Prints one JSON line: the published version and the rollout state, and the token files written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx

from service.common.cloud_admin import CloudAdmin
from service.common.errors import EibertError
from service.devstack.processes import http_ok, wait_until

ADMIN_ENV = "EIBERT_ADMIN_TOKEN"


def admin_token(token_file: str | None) -> str:
    token = os.environ.get(ADMIN_ENV, "").strip()
    if not token and token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    if not token:
        raise SystemExit(f"publish: set {ADMIN_ENV} or pass --admin-token-file")
    return token


def wait_ready(cloud: str, timeout_s: float) -> None:
    try:
        wait_until(http_ok(f"{cloud}/readyz"), f"the cloud at {cloud}", timeout_s=timeout_s)
    except RuntimeError as exc:
        raise SystemExit(f"publish: {exc}") from exc


def _token_spec(spec: str) -> tuple[Path, int]:
    path, sep, n = spec.rpartition(":")
    if not sep or not path or not n.isdigit() or int(n) < 1:
        raise argparse.ArgumentTypeError(f"expected PATH:MAX_DEVICES, got {spec!r}")
    return Path(path), int(n)


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.publish", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="bundle to publish and roll out (omit to only issue enrolment tokens)")
    p.add_argument("--cloud", required=True)
    p.add_argument("--percent", type=int, default=100, choices=range(0, 101), metavar="0-100")
    p.add_argument("--admin-token-file", help="file holding the admin token when EIBERT_ADMIN_TOKEN is unset")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the cloud's /readyz first")
    p.add_argument(
        "--enrolment-token",
        type=_token_spec,
        action="append",
        default=[],
        metavar="PATH:MAX_DEVICES",
        help="also issue an enrolment token good for MAX_DEVICES devices and write it to PATH (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.wait:
        wait_ready(args.cloud.rstrip("/"), args.wait)
    token = admin_token(args.admin_token_file)
    if args.bundle is None and not args.enrolment_token:
        raise SystemExit("publish: give --bundle, --enrolment-token PATH:MAX_DEVICES, or both")
    result: dict = {}
    try:
        with CloudAdmin(args.cloud, token) as admin:
            if args.bundle is not None:
                result = admin.publish_and_roll_out(Path(args.bundle), args.percent)
            for path, max_devices in args.enrolment_token:
                write_secret(path, admin.issue_enrolment_token(max_devices, label=path.name))
        if args.enrolment_token:
            result["enrolment_token_files"] = [str(path) for path, _ in args.enrolment_token]
    except (EibertError, httpx.HTTPError) as exc:
        sys.stderr.write(f"publish: error: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
