"""POST /v1/rank: best first, top_k, prior, cold start; every limit is a 422 with the field named."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.edge.ranker import RankerConfig, score
from service.edge.schemas import MAX_BEHAVIORS, MAX_CANDIDATES, MAX_TOP_K
from service.edge.slot import LoadedModel

BEHAVIORS = [
    {"text": "space opera with starships and laser battles", "ts": 1000.0, "kind": "click"},
    {"text": "a cooking show about french pastry", "ts": 10.0, "kind": "view"},
]
CANDIDATES = [
    {"id": "pastry", "text": "a cooking show about french pastry"},
    {"id": "space", "text": "space opera with starships and laser battles"},
    {"id": "other", "text": "tax law for small businesses"},
]


def test_matches_the_ranker_on_the_bundle_embeddings(client: TestClient) -> None:
    r = client.post("/v1/rank", json={"behaviors": BEHAVIORS, "candidates": CANDIDATES, "top_k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "tiny-0.0.1"
    model: LoadedModel = client.app.state.edge.slot.current
    b = model.encoder.encode([x["text"] for x in BEHAVIORS])
    c = model.encoder.encode([x["text"] for x in CANDIDATES])
    expected = score(b, np.array([x["ts"] for x in BEHAVIORS]), c, RankerConfig(), kinds=["click", "view"])
    order = np.argsort(-expected, kind="stable")
    assert [i["id"] for i in body["items"]] == [CANDIDATES[k]["id"] for k in order]
    np.testing.assert_allclose([i["score"] for i in body["items"]], expected[order], atol=1e-5)
    assert body["items"][0]["id"] == "space"  # identical to the most recent behaviour


def test_top_k_truncates_and_may_exceed_the_candidates(client: TestClient) -> None:
    r = client.post("/v1/rank", json={"behaviors": BEHAVIORS, "candidates": CANDIDATES, "top_k": 1})
    assert [i["id"] for i in r.json()["items"]] == ["space"]
    r = client.post("/v1/rank", json={"behaviors": BEHAVIORS, "candidates": CANDIDATES, "top_k": 50})
    assert len(r.json()["items"]) == 3


def test_cold_start_keeps_order_and_a_prior_reorders(client: TestClient) -> None:
    r = client.post("/v1/rank", json={"behaviors": [], "candidates": CANDIDATES})
    assert [i["id"] for i in r.json()["items"]] == ["pastry", "space", "other"]
    with_prior = [{**c, "prior": p} for c, p in zip(CANDIDATES, [0.0, 1.0, 5.0], strict=True)]
    r = client.post("/v1/rank", json={"behaviors": [], "candidates": with_prior})
    assert [i["id"] for i in r.json()["items"]] == ["other", "space", "pastry"]


def _cands(n: int) -> list[dict]:
    return [{"id": str(i), "text": "t"} for i in range(n)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"behaviors": BEHAVIORS, "candidates": []}, "candidates"),
        ({"candidates": _cands(MAX_CANDIDATES + 1)}, "candidates"),
        ({"behaviors": [{"text": "a", "ts": 1}] * (MAX_BEHAVIORS + 1), "candidates": CANDIDATES}, "behaviors"),
        ({"candidates": CANDIDATES, "top_k": 0}, "top_k"),
        ({"candidates": CANDIDATES, "top_k": MAX_TOP_K + 1}, "top_k"),
        ({"candidates": [CANDIDATES[0], CANDIDATES[0]]}, "body"),  # duplicate ids
        ({"candidates": [{**CANDIDATES[0], "prior": 1.0}, CANDIDATES[1]]}, "body"),  # prior on some only
        ({"behaviors": [{"text": "a"}], "candidates": CANDIDATES}, "behaviors.0.ts"),
        ({"behaviors": [{"text": "a", "ts": "yesterday"}], "candidates": CANDIDATES}, "behaviors.0.ts"),
        ({"behaviors": [{"text": "a", "ts": 1, "kind": "k" * 33}], "candidates": CANDIDATES}, "behaviors.0.kind"),
        ({"candidates": [{"id": "", "text": "a"}]}, "candidates.0.id"),
        ({"candidates": [{"id": "a"}]}, "candidates.0.text"),
        ({"candidates": CANDIDATES, "topk": 3}, "topk"),
        # the fields of the learned ranker: times in seconds, known kinds, positions in range, bounded numbers
        ({"behaviors": [{"text": "a", "ts": 1.7e12}], "candidates": CANDIDATES}, "behaviors.0.ts"),  # ms
        ({"behaviors": [{"text": "a", "ts": -5}], "candidates": CANDIDATES}, "behaviors.0.ts"),
        ({"behaviors": [{"text": "a", "ts": 1, "kind": "like"}], "candidates": CANDIDATES}, "behaviors.0.kind"),
        ({"behaviors": [{"text": "a", "ts": 1, "kind": "impression"}], "candidates": CANDIDATES}, "body"),
        ({"behaviors": [{"text": "a", "ts": 1, "position": -1}], "candidates": CANDIDATES}, "behaviors.0.position"),
        ({"behaviors": [{"text": "a", "ts": 1, "position": 500}], "candidates": CANDIDATES}, "behaviors.0.position"),
        ({"behaviors": [{"text": "a", "ts": 1, "item_id": ""}], "candidates": CANDIDATES}, "behaviors.0.item_id"),
        ({"candidates": [{"id": "a", "text": "b", "item_id": "x" * 129}]}, "candidates.0.item_id"),
        ({"candidates": [{"id": "a", "text": "b", "prior": 1.7e308}]}, "candidates.0.prior"),
        ({"candidates": CANDIDATES, "now": 1.7e12}, "now"),
        ({"candidates": CANDIDATES, "now": -1}, "now"),
        ({"candidates": CANDIDATES, "utc_offset_min": 24 * 60}, "utc_offset_min"),
        ({"behaviors": [{"text": "a", "ts": 1e9 + 2 * 86400}], "candidates": CANDIDATES, "now": 1e9}, "body"),
    ],
)
def test_invalid_requests_are_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/v1/rank", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith(f"{field}:")


def test_milliseconds_are_refused_with_a_message_that_says_so(client: TestClient) -> None:
    r = client.post("/v1/rank", json={"behaviors": [{"text": "a", "ts": 1.7e12}], "candidates": CANDIDATES})
    assert r.status_code == 422 and "milliseconds" in r.json()["message"]


def test_huge_priors_cannot_turn_scores_into_null(client: TestClient) -> None:
    """Was: priors [1.7e308, 1.7e308, -1.7e308] were accepted and every score came back null."""
    big = [{**c, "prior": p} for c, p in zip(CANDIDATES, [1e9, 1e9, -1e9], strict=True)]
    r = client.post("/v1/rank", json={"behaviors": BEHAVIORS, "candidates": big})
    assert r.status_code == 200 and all(isinstance(i["score"], float) for i in r.json()["items"])


def test_non_finite_numbers_are_refused(client: TestClient) -> None:
    raw = b'{"behaviors": [{"text": "a", "ts": NaN}], "candidates": [{"id": "a", "text": "b"}]}'
    r = client.post("/v1/rank", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("behaviors.0.ts:")
    raw = b'{"candidates": [{"id": "a", "text": "b", "prior": Infinity}]}'
    r = client.post("/v1/rank", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"].startswith("candidates.0.prior:")
