"""The Grafana dashboard asks only for metrics that running services export.

A real cloud (`python -m service.cloud --dev`, SQLite) and a real edge node (`python -m service.edge`) are
started as processes; after a little traffic their `/metrics` text is read, and every `eibert_*` name in every
PromQL expression of `loadtests/monitoring/grafana/dashboards/eibert.json` must be a sample name there, or a
family announced there (`# TYPE`, so a labelled metric that has no sample yet, such as a fleet estimate before
the first release, still counts) with its type's suffix. tests/test_compose.py checks the same dashboard
against the registries in the code; this checks it against what the processes say over HTTP.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.devstack.processes import free_port, service_process

DASHBOARD = Path(__file__).resolve().parents[2] / "loadtests" / "monitoring" / "grafana" / "dashboards" / "eibert.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def dashboard_names(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for q in (p, *p.get("panels", [])) for t in q.get("targets", [])]
    return {n for e in exprs for n in re.findall(r"\beibert_[a-z0-9_]+", e)}


def exposed_names(text: str) -> set[str]:
    """Sample names, and each announced family's names by its type."""
    names = set(re.findall(r"^(eibert_[a-z0-9_]+)[{ ]", text, flags=re.M))
    for family, kind in re.findall(r"^# TYPE (eibert_[a-z0-9_]+) (\w+)", text, flags=re.M):
        base = family.removesuffix("_total") if kind == "counter" else family
        names.update(base + s for s in SUFFIXES.get(kind, ("",)))
    return names


@pytest.fixture(scope="module")
def exposed(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    work = tmp_path_factory.mktemp("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EIBERT_")}
    cloud_port, edge_port = free_port(), free_port()
    cloud = service_process(
        "cloud",
        ["--dev", "--port", str(cloud_port), "--store", f"sqlite:///{work / 'cloud.db'}"],
        port=cloud_port,
        env={**env, "EIBERT_CLOUD_DATA_DIR": str(work / "cloud")},
        log_path=work / "cloud.log",
    )
    edge = service_process(
        "edge",
        ["--bundle", str(tiny_bundle), "--port", str(edge_port), "--state-dir", str(work / "edge")],
        port=edge_port,
        env=env,
        log_path=work / "edge.log",
    )
    try:
        for proc in (cloud, edge):
            proc.start()
            proc.wait_ready()
        httpx.post(f"{edge.url}/v1/encode", json={"texts": ["a text"]}, timeout=30).raise_for_status()
        body = {"behaviors": [{"text": "a", "ts": 1.0}], "candidates": [{"id": "x", "text": "b"}]}
        httpx.post(f"{edge.url}/v1/rank", json=body, timeout=30).raise_for_status()
        httpx.get(f"{cloud.url}/v1/fleet/metrics", timeout=30).raise_for_status()
        yield {n for p in (cloud, edge) for n in exposed_names(httpx.get(f"{p.url}/metrics", timeout=30).text)}
    finally:
        for proc in (edge, cloud):
            proc.stop()


def test_every_dashboard_metric_is_exported_by_a_running_service(exposed: set[str]) -> None:
    used = dashboard_names(json.loads(DASHBOARD.read_text()))
    assert len(used) >= 10, "the dashboard queries almost nothing"
    missing = sorted(used - exposed)
    assert not missing, f"the dashboard asks for metrics no running service exports: {missing}"


def test_a_misspelt_dashboard_metric_is_found(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][1]["targets"][0]["expr"] = "eibert_edge_model_version"  # the label, not a metric
    assert dashboard_names(dashboard) - exposed == {"eibert_edge_model_version"}
