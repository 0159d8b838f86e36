"""`python -m loadtests.stack_secrets --dir /secrets`: the docker compose stack's secrets, made once into a volume.

Run by the one-shot `init` service before anything else starts. Nothing secret is committed or baked into an
image; what exists in the volume is kept, so a restarted stack keeps the key its edge nodes pinned.

- `admin-token` (0600): `EIBERT_ADMIN_TOKEN` when set in the environment, else 32 random bytes (url-safe).
  The cloud and the publisher read it into `EIBERT_ADMIN_TOKEN` at start.
- `signing-key.pem` (0600): the cloud's Ed25519 manifest signing key (`EIBERT_CLOUD_SIGNING_KEY_FILE`).
- `signing-key.pub` (0644): its public half, base64 raw, which edge nodes pin
  (`EIBERT_EDGE_CLOUD_PUBLIC_KEY_FILE`) and the simulator passes as `--cloud-public-key`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.cloud_admin import ADMIN_TOKEN_ENV, admin_token_from_env
from service.common.signing import private_key_from_pem, private_key_to_pem, public_key_to_b64

ADMIN_TOKEN_FILE = "admin-token"
SIGNING_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub"
MIN_TOKEN_CHARS = 16  # the cloud refuses shorter (and weak) tokens (service/cloud/auth.py)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def ensure_secrets(directory: Path) -> list[str]:
    """Create what is missing; return the names of the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    token_path = directory / ADMIN_TOKEN_FILE
    given = admin_token_from_env()
    if given and len(given) < MIN_TOKEN_CHARS:
        raise SystemExit(f"stack_secrets: {ADMIN_TOKEN_ENV} must have at least {MIN_TOKEN_CHARS} characters")
    if given and (not token_path.exists() or token_path.read_text().strip() != given):
        _write(token_path, given.encode(), 0o600)
        written.append(ADMIN_TOKEN_FILE)
    elif not token_path.exists():
        _write(token_path, secrets.token_urlsafe(32).encode(), 0o600)
        written.append(ADMIN_TOKEN_FILE)
    key_path = directory / SIGNING_KEY_FILE
    if key_path.exists():
        key = private_key_from_pem(key_path.read_bytes())
    else:
        key = Ed25519PrivateKey.generate()
        _write(key_path, private_key_to_pem(key), 0o600)
        written.append(SIGNING_KEY_FILE)
    _write(directory / PUBLIC_KEY_FILE, public_key_to_b64(key.public_key()).encode(), 0o644)
    written.append(PUBLIC_KEY_FILE)
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.stack_secrets", description="make the stack's secrets")
    p.add_argument("--dir", required=True, help="the shared secrets volume")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    written = ensure_secrets(Path(args.dir))
    sys.stdout.write(f"secrets in {args.dir}: wrote {', '.join(written)}\n")  # names only, never values
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
