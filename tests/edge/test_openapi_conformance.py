"""The edge node against its own OpenAPI document (schemathesis): no 5xx, every answer documented."""

from __future__ import annotations

from pathlib import Path

from service.edge.app import create_app
from service.edge.config import EdgeSettings
from tests.conformance import run_conformance
from tests.simulators.conftest import serve, stop


def test_edge_answers_only_what_its_openapi_document_says(tiny_bundle: Path, tmp_path: Path) -> None:
    served = serve(create_app(EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path / "edge")))
    try:
        result = run_conformance(served.url)
    finally:
        stop(served)
    assert result.failures == [], result.report
    assert result.statuses[200] and result.statuses[422], result.statuses  # it reached real answers, both kinds


def test_the_request_limits_are_in_the_openapi_document(tiny_bundle, tmp_path) -> None:
    """What a client reads in /openapi.json: the per-field bounds as JSON Schema, the per-request budget in words."""
    from fastapi.testclient import TestClient

    from service.edge.app import create_app
    from service.edge.config import EdgeSettings
    from service.edge.schemas import MAX_REQUEST_CHARS, MAX_TEXT_CHARS, MAX_TEXTS

    with TestClient(create_app(EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path))) as c:
        schemas = c.get("/openapi.json").json()["components"]["schemas"]
    encode = schemas["EncodeRequest"]
    assert encode["properties"]["texts"]["maxItems"] == MAX_TEXTS
    assert encode["properties"]["texts"]["items"]["maxLength"] == MAX_TEXT_CHARS
    for name in ("EncodeRequest", "EmbeddingsRequest"):
        text = schemas[name]["description"]
        assert f"{MAX_REQUEST_CHARS:,}" in text and f"{MAX_TEXT_CHARS:,}" in text and f"{MAX_TEXTS}" in text, name
    assert schemas["OpenAIErrorBody"]["properties"]["error"]["$ref"].endswith("/OpenAIError")
