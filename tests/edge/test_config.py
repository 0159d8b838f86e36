"""Edge settings: environment prefix, validation up front, a pinned key whenever a cloud is configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from service.common.signing import public_key_to_b64
from service.edge.config import EdgeSettings

KEY = public_key_to_b64(Ed25519PrivateKey.generate().public_key())


def test_environment_with_prefix_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EIBERT_EDGE_BUNDLE", str(tmp_path))
    monkeypatch.setenv("EIBERT_EDGE_PORT", "9123")
    monkeypatch.setenv("EIBERT_EDGE_MAX_WAIT_MS", "2.5")
    s = EdgeSettings()
    assert (s.bundle, s.port, s.max_wait_ms, s.cloud) == (tmp_path, 9123, 2.5, None)
    assert EdgeSettings(port=9000).port == 9000  # explicit values (CLI flags) win over the environment


def test_cloud_requires_a_valid_pinned_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="pinned public key"):
        EdgeSettings(bundle=tmp_path, cloud="http://cloud:8000")
    with pytest.raises(ValidationError, match="base64 raw Ed25519"):
        EdgeSettings(bundle=tmp_path, cloud="http://cloud:8000", cloud_public_key="bm90IGEga2V5")
    key_file = tmp_path / "cloud.pub"
    key_file.write_text(KEY + "\n")
    s = EdgeSettings(bundle=tmp_path, cloud="http://cloud:8000/", cloud_public_key_file=key_file)
    assert s.cloud == "http://cloud:8000" and public_key_to_b64(s.pinned_public_key()) == KEY


@pytest.mark.parametrize(
    "bad",
    [{"cloud": "ftp://x", "cloud_public_key": KEY}, {"port": 0}, {"threads": 0}, {"max_batch_size": 0},
     {"max_wait_ms": -1}, {"cache_size": -1}, {"keep_bundles": 1}, {"device_id": "has spaces"}, {"nope": 1}],
)  # fmt: skip
def test_bad_values_are_refused(bad: dict, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        EdgeSettings(bundle=tmp_path, **bad)
