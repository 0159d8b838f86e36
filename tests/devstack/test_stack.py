"""The dev stack: a real cloud process started with secrets the caller knows (its admin token opens the admin
routes, its public key is the one the cloud signs with), a bundle published and rolled out, an enrolment token,
and a real edge node pinned to that key that enrols and serves; the caller's own secrets never leak in."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.common.cloud_admin import CloudAdmin
from service.common.errors import EibertError
from service.devstack.stack import clean_env, dev_cloud, dev_edge


def test_clean_env_drops_the_callers_service_settings_and_token() -> None:
    base = {"PATH": "/bin", "EIBERT_CLOUD_K_MIN": "3", "EIBERT_EDGE_PORT": "1", "EIBERT_ADMIN_TOKEN": "x" * 32}
    assert clean_env(base) == {"PATH": "/bin"}


def test_the_dev_cloud_gets_fresh_secrets_and_no_caller_secret(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "EIBERT_ADMIN_TOKEN_FILE": "/secret", "EIBERT_CLOUD_SIGNING_KEY_FILE": "/k.pem"}
    one = dev_cloud(tmp_path / "a", base_env=base, settings={"K_MIN": "7"}, unlimited_enrolment=False)
    two = dev_cloud(tmp_path / "b", base_env=base)
    assert one.admin_token != two.admin_token and one.public_key != two.public_key
    assert "EIBERT_ADMIN_TOKEN_FILE" not in one.env and "EIBERT_CLOUD_SIGNING_KEY_FILE" not in one.env
    assert one.env["EIBERT_ADMIN_TOKEN"] == one.admin_token and one.env["EIBERT_CLOUD_K_MIN"] == "7"
    assert "EIBERT_CLOUD_ENROL_RATE_PER_SOURCE" not in one.env and "EIBERT_CLOUD_ENROL_RATE_PER_SOURCE" in two.env
    assert one.process.argv[-2:] == ["--store", f"sqlite:///{tmp_path / 'a' / 'cloud.db'}"]


def test_a_dev_stack_publishes_enrols_and_serves(tmp_path: Path, tiny_bundle: Path) -> None:
    # the tiny bundle is random fp32 weights, over the shipped budget
    cloud = dev_cloud(tmp_path, log_path=tmp_path / "cloud.log", settings={"MAX_MODEL_BYTES": str(64 << 20)})
    with cloud.process:
        signing = httpx.get(f"{cloud.url}/v1/signing-key", timeout=10).json()
        assert signing["public_key"] == cloud.public_key  # the key the caller made is the one it signs with
        published = cloud.publish(tiny_bundle, 100)
        assert published["created"] and published["rollout"]["stable"] == published["version"]
        with pytest.raises(EibertError, match=r"401|403"), CloudAdmin(cloud.url, "not-" + cloud.admin_token) as bad:
            bad.issue_enrolment_token(1)
        token = cloud.enrolment_token(1, "test-edge")
        edge = dev_edge(tiny_bundle, cloud, tmp_path / "edge", token=token, log_path=tmp_path / "edge.log")
        with edge:
            body = httpx.post(f"{edge.url}/v1/encode", json={"texts": ["a film"]}, timeout=10).json()
            assert len(body["embeddings"]) == 1
            assert (tmp_path / "edge").is_dir()  # its state (the device token) lives where it was told
