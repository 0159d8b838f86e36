"""GET /v1/model describes the serving bundle exactly as its manifest does."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.common.manifest import read_manifest


def test_describes_the_serving_bundle(client: TestClient, tiny_bundle: Path) -> None:
    body = client.get("/v1/model").json()
    m = read_manifest(tiny_bundle)
    assert body["version"] == m.release_id == "tiny-0.0.1"  # the release id, as every response names it
    assert body["manifest_version"] == m.version == "0.0.1"  # deprecated, readable for one release
    assert (body["name"], body["dim"], body["max_length"]) == (m.name, m.dim, m.max_length)
    assert body["model_sha256"] == m.files["model.onnx"].sha256
    assert body["model_bytes"] == m.files["model.onnx"].bytes
    assert body["source"] == tiny_bundle.name and body["previous_version"] is None
    assert str(tiny_bundle.parent) not in json.dumps(body)  # no host path (issue 22)
    assert body["update"] == {
        "enabled": False, "state": "disabled", "last_check": None, "last_success": None, "last_error": None,
        "last_error_stage": None, "consecutive_failures": 0, "offered_version": None, "stale": False,
        "metadata_age_s": None, "generation": None, "metadata_issued": None, "metadata_expires": None,
    }  # fmt: skip
