"""POST /v1/rank on a bundle that ships `ranker.json`: repeats by item id or text, the clock, old clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.edge.app import create_app
from service.edge.config import EdgeSettings
from tests.edge.ranker_files import bundle_with_ranker, hand_ranker

DAY = 86400.0
MONDAY_9H = 17168 * DAY + 9 * 3600


@pytest.fixture(scope="module")
def client(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # score = how often the item was had + how well its hour fits the request's local hour
    ranker = hand_ranker({"log_count": 1.0, "item_hour": 0.5})
    bundle = bundle_with_ranker(
        tiny_bundle, tmp_path_factory.mktemp("ranker-bundle"), ranker.model_dump_json().encode()
    )
    settings = EdgeSettings(bundle=bundle, state_dir=tmp_path_factory.mktemp("edge-state"))
    with TestClient(create_app(settings)) as c:
        yield c


CANDIDATES = [
    {"id": "bread", "text": "sourdough bread, bakery", "item_id": "p2"},
    {"id": "milk", "text": "whole milk, dairy", "item_id": "p1"},
    {"id": "eggs", "text": "free range eggs, dairy", "item_id": "p3"},
]


def test_the_item_had_most_often_ranks_first(client: TestClient) -> None:
    behaviors = [{"text": "whole milk, dairy", "ts": MONDAY_9H + k * 7 * DAY, "kind": "purchase", "item_id": "p1"}
                 for k in range(3)]  # fmt: skip
    behaviors.append({"text": "sourdough bread, bakery", "ts": MONDAY_9H, "kind": "purchase", "item_id": "p2"})
    r = client.post("/v1/rank", json={"behaviors": behaviors, "candidates": CANDIDATES, "now": MONDAY_9H + 21 * DAY})
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == ["milk", "bread", "eggs"]


def test_the_request_clock_moves_hour_affinity(client: TestClient) -> None:
    # milk once at 09:00, bread once at 21:00: equal counts, so the request's local hour decides
    behaviors = [
        {"text": "whole milk, dairy", "ts": MONDAY_9H, "kind": "purchase", "item_id": "p1"},
        {"text": "sourdough bread, bakery", "ts": MONDAY_9H + 12 * 3600, "kind": "purchase", "item_id": "p2"},
    ]
    morning = {"behaviors": behaviors, "candidates": CANDIDATES, "now": MONDAY_9H + 7 * DAY}
    assert client.post("/v1/rank", json=morning).json()["items"][0]["id"] == "milk"
    evening = {**morning, "utc_offset_min": 12 * 60}  # the same instant is 21:00 local... for both behaviours
    assert client.post("/v1/rank", json=evening).json()["items"][0]["id"] == "milk"
    night = {**morning, "now": MONDAY_9H + 7 * DAY + 12 * 3600}
    assert client.post("/v1/rank", json=night).json()["items"][0]["id"] == "bread"


def test_old_clients_without_ids_or_clock_still_get_repeats_by_text(client: TestClient) -> None:
    behaviors = [{"text": "free range eggs, dairy", "ts": 100.0 + k} for k in range(3)]
    candidates = [{"id": c["id"], "text": c["text"]} for c in CANDIDATES]
    r = client.post("/v1/rank", json={"behaviors": behaviors, "candidates": candidates})
    assert r.status_code == 200
    assert r.json()["items"][0]["id"] == "eggs"


def test_impressions_do_not_count_as_interest(client: TestClient) -> None:
    shown = [{"text": "free range eggs, dairy", "ts": 100.0 + k, "kind": "impression", "position": 0, "item_id": "p3"}
             for k in range(5)]  # fmt: skip
    bought = [{"text": "whole milk, dairy", "ts": 50.0, "kind": "purchase", "item_id": "p1"}]
    r = client.post("/v1/rank", json={"behaviors": shown + bought, "candidates": CANDIDATES})
    assert r.json()["items"][0]["id"] == "milk"
