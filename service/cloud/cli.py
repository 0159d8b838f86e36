"""`eibert cloud` and `eibert publish` handlers (wired into the `eibert` parser by model_store/cli.py).

`cmd_cloud(args)`: args.store (URL or None), args.port (int or None), optional args.host, args.dev (bool).
`cmd_publish(args)`: args.bundle (dir), args.cloud (base URL); the admin token comes from EIBERT_ADMIN_TOKEN.
Both return a process exit status; output for the user goes to stdout as one JSON line, diagnostics to logging.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from service.common.archive import pack_bundle
from service.common.errors import EibertError
from service.common.manifest import verify_bundle

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 300.0


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

    from service.cloud.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings_from(args)
    except ValidationError as exc:
        log.error("cloud settings are invalid: %s", "; ".join(e["msg"] for e in exc.errors()))
        return 2
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", access_log=False)
    return 0


def publish_bundle(bundle_dir: Path, cloud_url: str, token: str, *, client: httpx.Client | None = None) -> dict:
    """Verify the bundle locally, pack it and upload it; return the registered version's JSON.

    Raises EibertError with the cloud's message on refusal (401/403/409/413/422).
    """
    verify_bundle(bundle_dir)  # fail fast, before the upload, on a bundle that cannot pass the cloud's check
    archive = pack_bundle(bundle_dir)
    own = client is None
    http = client or httpx.Client(timeout=PUBLISH_TIMEOUT_S)
    try:
        resp = http.post(
            f"{cloud_url.rstrip('/')}/v1/models",
            content=archive,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"},
        )
    except httpx.HTTPError as exc:
        raise EibertError(f"cannot reach the cloud at {cloud_url}: {exc}") from exc
    finally:
        if own:
            http.close()
    if resp.status_code not in (200, 201):
        try:
            detail = resp.json().get("message", resp.text)
        except ValueError:
            detail = resp.text[:500]
        raise EibertError(f"cloud refused the bundle ({resp.status_code}): {detail}")
    body = resp.json()
    body["created"] = resp.status_code == 201
    return body


def cmd_publish(args: argparse.Namespace) -> int:
    token = os.environ.get("EIBERT_ADMIN_TOKEN", "")
    if not token:
        raise EibertError("EIBERT_ADMIN_TOKEN is not set: publishing needs the cloud's admin token")
    body = publish_bundle(Path(args.bundle), args.cloud, token)
    summary = {k: body[k] for k in ("version", "bundle_sha256", "bundle_bytes", "model_bytes", "created")}
    sys.stdout.write(json.dumps(summary) + "\n")  # the command's result, for scripts; not a log line
    return 0
