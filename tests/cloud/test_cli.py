"""`eibert publish` and `eibert cloud` handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.cloud.cli import cmd_cloud, cmd_publish
from service.common.cloud_admin import publish_bundle
from service.common.errors import EibertError
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
