"""Secret material at startup: the Ed25519 signing key and the admin token.

Production passes both in (env or file). Dev mode (`make demo`, local runs) may generate them once under
`data_dir` with 0600 permissions and says so in a log line, so a restart keeps the same key and devices that
pinned it keep verifying.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.cloud.auth import admin_token_problem
from service.cloud.config import Settings
from service.common.errors import EibertError
from service.common.signing import private_key_from_pem, private_key_to_pem, public_key_to_b64

log = logging.getLogger(__name__)

DEV_KEY_FILE = "dev-signing-key.pem"
DEV_TOKEN_FILE = "dev-admin-token"


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def load_signing_key(settings: Settings) -> Ed25519PrivateKey:
    try:
        if settings.signing_key is not None:
            return private_key_from_pem(settings.signing_key.get_secret_value().encode())
        if settings.signing_key_file is not None:
            return private_key_from_pem(Path(settings.signing_key_file).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise EibertError(f"cannot load the signing key: {exc}") from exc
    if not settings.dev_mode:  # pragma: no cover - Settings already refuses this
        raise EibertError("no signing key configured")
    path = settings.data_dir / DEV_KEY_FILE
    if path.is_file():
        key = private_key_from_pem(path.read_bytes())
        log.warning("dev mode: using the generated signing key at %s", path)
    else:
        key = Ed25519PrivateKey.generate()
        write_private(path, private_key_to_pem(key))
        log.warning("dev mode: generated a new Ed25519 signing key at %s (not for production)", path)
    log.info("manifest signing public key (devices pin this): %s", public_key_to_b64(key.public_key()))
    return key


def load_admin_token(settings: Settings) -> str:
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    path = settings.data_dir / DEV_TOKEN_FILE
    if path.is_file():
        token = path.read_text().strip()
        if problem := admin_token_problem(token):
            raise EibertError(f"the dev-mode admin token in {path} {problem}: delete the file to generate one")
        log.warning("dev mode: admin token read from %s", path)
    else:
        token = secrets.token_urlsafe(32)
        write_private(path, token.encode())
        log.warning("dev mode: generated an admin token into %s (set EIBERT_ADMIN_TOKEN in production)", path)
    return token
