"""Invented HTTP methods against a running app, and how much its `/metrics` grew meanwhile.

Each invented method used to become a label value, i.e. a new series per method (edge 90 KB -> 8.4 MB after
5,000); with bounded labels only counters move, by a few digits.
"""

from __future__ import annotations

from fastapi.testclient import TestClient


def metrics_growth_after_invented_methods(client: TestClient, n: int = 1000) -> tuple[int, str]:
    """(bytes /metrics grew by, its text after) once `n` requests with invented methods hit /healthz."""
    client.request("BREW", "/healthz")  # the first one creates the `other` series
    client.get("/metrics")  # and the scrape's own series
    before = len(client.get("/metrics").content)
    for i in range(n):
        assert client.request(f"M{i}", "/healthz").status_code == 405
    text = client.get("/metrics").text
    assert f"M{n - 1}" not in text and "BREW" not in text
    return len(text.encode()) - before, text
