"""Settings refuse missing or default secrets outside dev mode; dev mode generates them and says so."""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.cloud import Settings, create_app
from service.cloud.auth import MAX_TOKEN_CHARS, admin_token_problem, bearer
from service.cloud.keys import DEV_KEY_FILE, DEV_TOKEN_FILE
from service.common.errors import EibertError
from service.common.signing import private_key_to_pem

STRONG = "a-long-enough-admin-token-xyz"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("EIBERT_CLOUD_") or name == "EIBERT_ADMIN_TOKEN":
            monkeypatch.delenv(name)


@pytest.mark.parametrize("token", [None, "", "changethis", "admin", "short-token"])
def test_missing_or_default_admin_token_refuses_to_start(token: str | None, tmp_path: Path) -> None:
    kwargs = {"signing_key_file": tmp_path / "k.pem"}
    if token is not None:
        kwargs["admin_token"] = token
    with pytest.raises(ValidationError, match="EIBERT_ADMIN_TOKEN"):
        Settings(**kwargs)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("a" * 16, "too predictable"),
        ("ab" * 20, "too predictable"),  # 40 characters, but only 40 bits
        ("f0a9" * 64, "distinct characters"),  # 512 "bits" by frequency, but four characters repeated
        (" " * 16, "whitespace"),
        (f" {STRONG} ", "whitespace"),  # bearer() strips it: no client could ever match it
        (f"{STRONG}\n", "whitespace"),
        (f"{STRONG[:8]} {STRONG[8:]}", "whitespace"),
        (f"{STRONG}é", "printable ASCII"),
        ("x9" + "Q" * 5 + "k", "shorter than 16"),
        ("k3-" + STRONG * 10, "longer than 256"),  # bearer() refuses it: every admin call would be 401
    ],
)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_weak_or_unpresentable_admin_token_refuses_to_start(
    token: str, reason: str, dev_mode: bool, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match=f"EIBERT_ADMIN_TOKEN .*{reason}"):
        Settings(admin_token=token, signing_key_file=tmp_path / "k.pem", dev_mode=dev_mode)


@pytest.mark.parametrize(
    "token",
    [STRONG, "test-admin-token-0123456789abcdef", secrets.token_urlsafe(32), secrets.token_hex(MAX_TOKEN_CHARS // 2)],
    ids=["strong", "fixture", "urlsafe-32", "hex-longest"],  # stable ids: pytest-xdist workers must collect alike
)
def test_good_admin_tokens_are_accepted_and_presentable(token: str, tmp_path: Path) -> None:
    assert admin_token_problem(token) is None
    assert Settings(admin_token=token, signing_key_file=tmp_path / "k.pem").admin_token is not None
    assert bearer(f"Bearer {token}") == token


def test_a_weak_dev_mode_token_file_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / DEV_TOKEN_FILE).write_text("a" * 32)
    s = Settings(dev_mode=True, data_dir=tmp_path / "d")
    with pytest.raises(EibertError, match="too predictable"), TestClient(create_app(s)):
        pass


def test_missing_signing_key_refuses_to_start() -> None:
    with pytest.raises(ValidationError, match="signing key"):
        Settings(admin_token=STRONG)


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", STRONG)
    monkeypatch.setenv("EIBERT_CLOUD_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    monkeypatch.setenv("EIBERT_CLOUD_K_MIN", "7")
    monkeypatch.setenv("EIBERT_CLOUD_DAILY_EPSILON_BUDGET", "2.5")
    s = Settings()
    assert s.admin_token is not None and s.admin_token.get_secret_value() == STRONG
    assert s.k_min == 7 and s.daily_epsilon_budget == 2.5
    assert STRONG not in repr(s)


def test_signing_key_file_is_used(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(private_key_to_pem(key))
    s = Settings(
        admin_token=STRONG,
        signing_key_file=tmp_path / "k.pem",
        data_dir=tmp_path / "d",
        store_url=f"sqlite:///{tmp_path / 'c.db'}",
    )
    with TestClient(create_app(s)) as client:
        assert client.app.state.ctx.registry.key.private_bytes_raw() == key.private_bytes_raw()


def test_unreadable_signing_key_fails_startup(tmp_path: Path) -> None:
    s = Settings(
        admin_token=STRONG,
        signing_key_file=tmp_path / "missing.pem",
        data_dir=tmp_path / "d",
        store_url=f"sqlite:///{tmp_path / 'c.db'}",
    )
    with pytest.raises(Exception, match="signing key"), TestClient(create_app(s)):
        pass


def test_dev_mode_generates_secrets_once_and_logs_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(dev_mode=True, data_dir=tmp_path / "d")  # default store: sqlite under data_dir
    with caplog.at_level(logging.INFO), TestClient(create_app(s)) as client:
        public_key = client.get("/v1/signing-key").json()["public_key"]
        admin = client.app.state.ctx.admin_token.current()
    assert "generated a new Ed25519 signing key" in caplog.text
    assert "generated an admin token" in caplog.text
    assert admin not in caplog.text  # the secret itself is never logged
    assert admin_token_problem(admin) is None and bearer(f"Bearer {admin}") == admin  # the generated one passes
    for name in (DEV_KEY_FILE, DEV_TOKEN_FILE):
        assert stat.S_IMODE((tmp_path / "d" / name).stat().st_mode) == 0o600
    assert (tmp_path / "d" / "cloud.db").is_file()
    caplog.clear()
    with TestClient(create_app(s)) as client:  # a restart keeps the key devices pinned
        assert client.get("/v1/signing-key").json()["public_key"] == public_key
        assert client.app.state.ctx.admin_token.current() == admin
    assert "generated a new" not in caplog.text and "generated an admin" not in caplog.text


def _token_file_cloud(tmp_path: Path) -> Settings:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(private_key_to_pem(key))
    return Settings(
        admin_token_file=tmp_path / "admin-token",
        signing_key_file=tmp_path / "k.pem",
        data_dir=tmp_path / "d",
        store_url=f"sqlite:///{tmp_path / 'c.db'}",
    )


def _replace(path: Path, text: str) -> None:
    """As the compose stack's init writes it: a new file renamed over the old one."""
    (path.parent / "tmp-token").write_text(text)
    (path.parent / "tmp-token").replace(path)


def test_the_admin_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    """Issue 13: a changed token on a later `up` must reach the running cloud, not leave it on the old one."""
    token_file = tmp_path / "admin-token"
    old, new = STRONG, "another-long-enough-admin-token-42"
    token_file.write_text(old + "\n")
    with TestClient(create_app(_token_file_cloud(tmp_path))) as client:

        def issue(token: str):
            return client.post(
                "/v1/enrolment-tokens", json={"max_devices": 1}, headers={"Authorization": f"Bearer {token}"}
            )

        assert issue(old).status_code == 201
        _replace(token_file, new)
        assert issue(old).status_code == 403 and issue(new).status_code == 201
        _replace(token_file, "a" * 32)  # weak: refused, with the reason, rather than kept or trusted
        resp = issue("a" * 32)
        assert resp.status_code == 403 and "too predictable" in resp.json()["message"]
        assert issue(new).status_code == 403
        token_file.unlink()
        resp = issue(new)
        assert resp.status_code == 403 and "cannot be read" in resp.json()["message"]
        assert str(new) not in resp.text
        _replace(token_file, new)
        assert issue(new).status_code == 201


def test_an_unusable_admin_token_file_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(EibertError, match="cannot be read"), TestClient(create_app(_token_file_cloud(tmp_path))):
        pass
    (tmp_path / "admin-token").write_text("short")
    with pytest.raises(EibertError, match="shorter than"), TestClient(create_app(_token_file_cloud(tmp_path))):
        pass
    with pytest.raises(ValidationError, match="not both"):
        Settings(admin_token=STRONG, admin_token_file=tmp_path / "admin-token", signing_key_file=tmp_path / "k")


def test_the_token_file_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN_FILE", str(tmp_path / "admin-token"))
    monkeypatch.setenv("EIBERT_CLOUD_SIGNING_KEY_FILE", str(tmp_path / "k.pem"))
    assert Settings().admin_token_file == tmp_path / "admin-token"  # and no EIBERT_ADMIN_TOKEN is needed


def test_the_data_dir_defaults_to_the_users_state_dir_not_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eibert cloud` run from a checkout must not write its state into it."""
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert Settings(dev_mode=True).data_dir == tmp_path / "state" / "eibert" / "cloud"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data_dir = Settings(dev_mode=True).data_dir
    assert data_dir == tmp_path / "home" / ".local" / "state" / "eibert" / "cloud"
    assert not data_dir.is_relative_to(Path.cwd())
