"""Secret material: the Ed25519 signing key (read at startup) and the admin token.

Production passes both in (env or file). The admin token may live in a file (`EIBERT_ADMIN_TOKEN_FILE`), which
the cloud re-reads whenever it changes (checked on each admin request: inode, mtime, size): rotating the token
is writing the file, with no restart, and a running cloud never keeps serving a token its operator replaced
(the compose stack's `init` rewrites the file when `EIBERT_ADMIN_TOKEN` changes on a later `up`). A file whose
token is unreadable or weak refuses every admin call, with the reason, until it is fixed.

Key rotation (`service.common.key_rotation`): the store holds the chain of signed rotation statements; a cloud
whose signing key is not the newest key of that chain refuses to start (`check_signing_key`), since devices
that followed the chain no longer trust an older key.

Dev mode (`make demo`, local runs) may generate both once under `data_dir` with 0600 permissions and says so
in a log line, so a restart keeps the same key and devices that pinned it keep verifying.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.cloud.auth import admin_token_problem
from service.cloud.config import Settings
from service.cloud.store import Store
from service.common.errors import EibertError
from service.common.key_rotation import stored_head
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


async def check_signing_key(store: Store, public_key: str) -> None:
    """EibertError unless `public_key` is the newest key of the store's rotation chain (any key, if it is empty)."""
    newest = stored_head(await store.rotations(), public_key)
    if newest.key != public_key:
        raise EibertError(
            f"this cloud signs with {public_key}, but the store's key rotation chain ends at key {newest.version}, "
            f"{newest.key}: start it with that key (devices that followed the rotation trust no other)"
        )


class AdminTokenUnusable(EibertError):
    """The admin token file cannot be read or holds a weak token (admin calls are refused meanwhile)."""


class AdminToken:
    """The admin token now: fixed (environment, dev mode) or the content of a file, re-read when it changes."""

    def __init__(self, *, fixed: str | None = None, path: Path | None = None) -> None:
        if (fixed is None) == (path is None):
            raise ValueError("AdminToken needs exactly one of a fixed token or a file")
        self._path = path
        self._token = fixed
        self._problem: str | None = None
        self._seen: tuple[int, int, int] | None = None
        if path is not None:
            self.current()  # at startup an unusable file is fatal: raise now, with the reason

    def current(self) -> str:
        """The token to compare with; raises AdminTokenUnusable while the file is unreadable or weak."""
        if self._path is None:
            assert self._token is not None
            return self._token
        try:
            st = self._path.stat()
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
            if seen != self._seen:
                token = self._path.read_text(encoding="utf-8").strip()
                problem = admin_token_problem(token)
                self._token, self._problem = (None, f"holds a token that {problem}") if problem else (token, None)
                self._seen = seen
                if problem is None:
                    log.info("admin token (re)read from %s", self._path)
        except (OSError, UnicodeDecodeError) as exc:
            self._token, self._problem, self._seen = None, f"cannot be read ({type(exc).__name__})", None
        if self._token is None:
            raise AdminTokenUnusable(f"the admin token file {self._path} {self._problem}; admin calls are refused")
        return self._token


def load_admin_token(settings: Settings) -> AdminToken:
    if settings.admin_token_file is not None:
        return AdminToken(path=Path(settings.admin_token_file))
    return AdminToken(fixed=_fixed_admin_token(settings))


def _fixed_admin_token(settings: Settings) -> str:
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
