"""One running edge app (tiny bundle, no cloud) shared by a test module: routes are read-mostly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.edge.app import create_app
from service.edge.config import EdgeSettings


@pytest.fixture(scope="module")
def client(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path_factory.mktemp("edge-state"), max_body_bytes=65536)
    with TestClient(create_app(settings)) as c:
        yield c


def metric(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float:
    """One sample from /metrics, read over HTTP as a scraper would."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                return s.value
    return 0.0
