"""POST /v1/encode: the bundle's embeddings, in order, with the model version; bad input is a clear 4xx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.edge.encoder import OnnxEncoder
from service.edge.schemas import MAX_TEXT_CHARS, MAX_TEXTS
from tests.conftest import TINY_DIM
from tests.edge.routes.conftest import metric

TEXTS = ["a man plays a guitar", "the quick brown fox jumps over the lazy dog", "x", "a man plays a guitar"]


def test_returns_the_bundle_embeddings_in_input_order(client: TestClient, tiny_bundle: Path) -> None:
    r = client.post("/v1/encode", json={"texts": TEXTS})
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == "tiny-0.0.1" and body["dim"] == TINY_DIM
    got = np.array(body["embeddings"], dtype=np.float32)
    np.testing.assert_allclose(got, OnnxEncoder(tiny_bundle).encode(TEXTS), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_repeated_texts_hit_the_cache(client: TestClient) -> None:
    text = "a sentence only this test sends"
    hits0 = metric(client, "eibert_edge_cache_hits_total")
    misses0 = metric(client, "eibert_edge_cache_misses_total")
    first = client.post("/v1/encode", json={"texts": [text]}).json()
    second = client.post("/v1/encode", json={"texts": [text, text]}).json()
    assert second["embeddings"] == [first["embeddings"][0]] * 2
    assert metric(client, "eibert_edge_cache_misses_total") - misses0 == 1
    assert metric(client, "eibert_edge_cache_hits_total") - hits0 == 1  # duplicates in a request count once


def test_batch_sizes_are_exported(client: TestClient) -> None:
    before = metric(client, "eibert_edge_batch_size_sum")
    client.post("/v1/encode", json={"texts": ["batch one", "batch two", "batch three"]})
    assert metric(client, "eibert_edge_batch_size_sum") - before == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["a"] * (MAX_TEXTS + 1)}, "texts"),
        ({"texts": ["a" * (MAX_TEXT_CHARS + 1)]}, "texts.0"),
        ({"texts": [""]}, "texts.0"),
        ({"texts": [3]}, "texts.0"),
        ({"texts": "not a list"}, "texts"),
        ({}, "texts"),
        ({"texts": ["a"], "batch": 5}, "batch"),
    ],
)
def test_invalid_requests_are_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    r = client.post("/v1/encode", json=body)
    assert r.status_code == 422
    err = r.json()
    assert err["error"] == "invalid_request" and err["message"].startswith(f"{field}:")
    assert all(set(e) == {"loc", "msg", "type"} for e in err["errors"])  # no "input": texts are not echoed


def test_a_refused_private_text_is_not_echoed_back(client: TestClient) -> None:
    secret = "my diagnosis is confidential " * 100
    r = client.post("/v1/encode", json={"texts": [secret]})
    assert r.status_code == 422 and "confidential" not in r.text


def test_malformed_json_and_oversized_bodies(client: TestClient) -> None:
    r = client.post("/v1/encode", content=b'{"texts": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    r = client.post("/v1/encode", content=b"x" * 70000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


def test_streamed_oversized_body_without_length_is_413(client: TestClient) -> None:
    def chunks():
        for _ in range(20):
            yield b"x" * 8192

    r = client.post("/v1/encode", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_wrong_method_and_unknown_route(client: TestClient) -> None:
    assert client.get("/v1/encode").status_code == 405
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
