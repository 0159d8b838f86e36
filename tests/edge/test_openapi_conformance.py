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
