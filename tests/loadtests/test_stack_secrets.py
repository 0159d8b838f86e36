from __future__ import annotations

import stat
from pathlib import Path

import pytest

from loadtests.stack_secrets import ensure_secrets
from service.common.signing import private_key_from_pem, public_key_from_b64, public_key_to_b64


def test_secrets_are_made_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EIBERT_ADMIN_TOKEN", raising=False)
    assert ensure_secrets(tmp_path) == ["admin-token", "signing-key.pem", "signing-key.pub"]
    token = (tmp_path / "admin-token").read_text()
    key = private_key_from_pem((tmp_path / "signing-key.pem").read_bytes())
    assert len(token) >= 16
    assert public_key_to_b64(public_key_from_b64((tmp_path / "signing-key.pub").read_text())) == public_key_to_b64(
        key.public_key()
    )
    for name in ("admin-token", "signing-key.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert ensure_secrets(tmp_path) == ["signing-key.pub"]  # a restart keeps the token and the pinned key
    assert (tmp_path / "admin-token").read_text() == token


def test_admin_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", "a-long-enough-admin-token")
    ensure_secrets(tmp_path)
    assert (tmp_path / "admin-token").read_text() == "a-long-enough-admin-token"
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", "short")
    with pytest.raises(SystemExit):
        ensure_secrets(tmp_path)
