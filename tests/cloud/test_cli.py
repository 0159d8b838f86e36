"""`eibert publish`, `eibert cloud` and `eibert keys rotate` handlers."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.cloud.cli import cmd_cloud, cmd_publish
from service.common.cloud_admin import publish_bundle
from service.common.errors import EibertError
from service.devstack.processes import free_port, service_process
from tests.cloud.conftest import ADMIN_TOKEN


def test_publish_bundle_uploads_and_is_idempotent(client: TestClient, tiny_bundle: Path) -> None:
    first = publish_bundle(tiny_bundle, "http://testserver", ADMIN_TOKEN, client=client)
    assert first["version"] == "tiny-0.0.1" and first["created"] is True
    again = publish_bundle(tiny_bundle, "http://testserver/", ADMIN_TOKEN, client=client)
    assert again["created"] is False and again["bundle_sha256"] == first["bundle_sha256"]
    with pytest.raises(EibertError, match="403"):
        publish_bundle(tiny_bundle, "http://testserver", "wrong-token-wrong-token", client=client)


def test_publish_refuses_a_broken_bundle_before_uploading(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(EibertError):
        publish_bundle(tmp_path, "http://127.0.0.1:9", ADMIN_TOKEN)


def test_publish_needs_the_admin_token(monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path) -> None:
    monkeypatch.delenv("EIBERT_ADMIN_TOKEN", raising=False)
    with pytest.raises(EibertError, match="EIBERT_ADMIN_TOKEN"):
        cmd_publish(argparse.Namespace(bundle=str(tiny_bundle), cloud="http://127.0.0.1:9"))


def test_publish_reports_an_unreachable_cloud(monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", ADMIN_TOKEN)
    with pytest.raises(EibertError, match="cannot reach"):
        cmd_publish(argparse.Namespace(bundle=str(tiny_bundle), cloud="http://127.0.0.1:9"))


def test_cloud_refuses_to_start_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EIBERT_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("EIBERT_CLOUD_DEV_MODE", raising=False)
    assert cmd_cloud(argparse.Namespace(store=None, port=8000)) == 2


def eibert(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eibert", *argv], env=env, capture_output=True, text=True, timeout=120)


def test_keys_rotate_extends_the_chain_and_the_old_key_can_no_longer_serve(tmp_path: Path) -> None:
    """Issue 22: there was one signing key and no way to rotate it. `eibert keygen` makes the successor,
    `eibert keys rotate` signs OLD -> NEW here and adds it to a real cloud's chain; a second rotation signed by
    OLD is refused; the cloud restarted with OLD refuses to start, with NEW it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EIBERT_CLOUD_", "EIBERT_ADMIN_TOKEN"))}
    env |= {"EIBERT_ADMIN_TOKEN": ADMIN_TOKEN, "EIBERT_CLOUD_DATA_DIR": str(tmp_path / "data")}
    old, new = tmp_path / "k1.pem", tmp_path / "k2.pem"
    keys = {p: json.loads(eibert("keygen", "--out", str(p), env=env).stdout)["public_key"] for p in (old, new)}
    port = free_port()
    args = ["--store", f"sqlite:///{tmp_path / 'cloud.db'}", "--port", str(port)]
    cloud = service_process("cloud", args, port=port, env={**env, "EIBERT_CLOUD_SIGNING_KEY_FILE": str(old)},
                            log_path=tmp_path / "cloud.log")  # fmt: skip
    with cloud:
        done = eibert("keys", "rotate", "--old", str(old), "--new", str(new), "--cloud", cloud.url, env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"version": 2, "key": keys[new]}
        again = eibert("keys", "rotate", "--old", str(old), "--new", str(new), "--cloud", cloud.url, env=env)
        assert again.returncode == 1 and "422" in again.stderr
        chain = httpx.get(f"{cloud.url}/v1/keys/rotations").json()
        assert chain["count"] == 1
    cloud.env = {**env, "EIBERT_CLOUD_SIGNING_KEY_FILE": str(old)}
    cloud.start()
    assert cloud.proc is not None and cloud.proc.wait(timeout=60) != 0
    assert "rotation chain ends at key 2" in (tmp_path / "cloud.log").read_text()
    cloud.env = {**env, "EIBERT_CLOUD_SIGNING_KEY_FILE": str(new)}
    with cloud:
        assert httpx.get(f"{cloud.url}/v1/signing-key").json()["public_key"] == keys[new]
