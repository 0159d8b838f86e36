"""POST /v1/embeddings (OpenAI's Embeddings API): /v1/encode's rows in OpenAI's envelope, with token usage;
bad input is a clear 4xx in the shared error shape, and a private text is never echoed."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.edge.app import create_app
from service.edge.encoder import OnnxEncoder
from service.edge.schemas import MAX_REQUEST_CHARS, MAX_TEXT_CHARS, MAX_TEXTS
from tests.conftest import TINY_DIM

TEXTS = ["a man plays a guitar", "the quick brown fox jumps over the lazy dog", "x", "a man plays a guitar"]


def decode(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def test_rows_usage_and_model_match_encode_and_the_tokenizer(client: TestClient, tiny_bundle: Path) -> None:
    r = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "tiny-0.0.1"
    assert [d["index"] for d in body["data"]] == list(range(len(TEXTS)))
    assert {d["object"] for d in body["data"]} == {"embedding"}
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    encoder = OnnxEncoder(tiny_bundle)
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-6)
    encoded = client.post("/v1/encode", json={"texts": TEXTS}).json()["embeddings"]
    np.testing.assert_array_equal(got, np.array(encoded, dtype=np.float32))
    # usage: what the model read, [CLS] and [SEP] included, duplicates counted as sent
    expected = sum(len(encoder.tokenizer.encode(t).ids) for t in TEXTS)
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}
    assert expected > 2 * len(TEXTS)


def test_usage_counts_tokens_after_truncation(client: TestClient) -> None:
    long = "word " * 300  # far past the tiny model's 64 tokens
    usage = client.post("/v1/embeddings", json={"model": "tiny", "input": long}).json()["usage"]
    assert usage["prompt_tokens"] == 64


def test_a_string_input_is_one_row_and_the_release_id_names_the_model_too(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"model": "tiny-0.0.1", "input": "one text", "dimensions": TINY_DIM})
    assert r.status_code == 200, r.text
    (row,) = r.json()["data"]
    assert len(row["embedding"]) == TINY_DIM and abs(np.linalg.norm(row["embedding"]) - 1.0) < 1e-5


def test_base64_is_the_little_endian_float32_rows(client: TestClient) -> None:
    floats = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS}).json()["data"]
    b64 = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS, "encoding_format": "base64"}).json()
    rows = np.stack([decode(d["embedding"]) for d in b64["data"]])
    np.testing.assert_array_equal(rows, np.array([d["embedding"] for d in floats], dtype=np.float32))


def test_encode_also_answers_base64(client: TestClient) -> None:
    floats = client.post("/v1/encode", json={"texts": TEXTS}).json()
    b64 = client.post("/v1/encode", json={"texts": TEXTS, "encoding_format": "base64"}).json()
    assert b64["dim"] == TINY_DIM and b64["model_version"] == floats["model_version"]
    rows = np.stack([decode(e) for e in b64["embeddings"]])
    assert rows.shape == (len(TEXTS), TINY_DIM)
    np.testing.assert_array_equal(rows, np.array(floats["embeddings"], dtype=np.float32))


def test_other_dimensions_are_400_naming_the_width(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"model": "tiny", "input": "x", "dimensions": TINY_DIM // 2})
    assert r.status_code == 400
    err = r.json()["error"]  # OpenAI's shape: {"error": {"message", "type", "param", "code"}}
    assert (err["type"], err["param"]) == ("invalid_request_error", "dimensions")
    assert f"{TINY_DIM}-dimensional" in err["message"]


def test_a_model_this_node_does_not_serve_is_404(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", "model", "model_not_found")
    assert "tiny-0.0.1" in err["message"] and "'eibert'" in err["message"]


@pytest.mark.parametrize("model", ["eibert", "tiny", "tiny-0.0.1"])
def test_the_alias_the_model_line_and_the_release_id_are_served(client: TestClient, model: str) -> None:
    """`eibert` names whatever this node serves, so a client configured with it keeps working across rollouts
    (even to another model line); every answer names the release id that produced the rows."""
    r = client.post("/v1/embeddings", json={"model": model, "input": "x"})
    assert r.status_code == 200 and r.json()["model"] == "tiny-0.0.1"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "tiny", "input": [101, 2023, 102]}, "token ids"),
        ({"model": "tiny", "input": [[101, 102]]}, "token ids"),
        ({"model": "tiny", "input": []}, "empty list"),
        ({"model": "tiny", "input": ["a"] * (MAX_TEXTS + 1)}, f"limit is {MAX_TEXTS}"),
        ({"model": "tiny", "input": 7}, "string or a list of strings"),
        ({"model": "tiny", "input": ""}, "input"),
        ({"model": "tiny", "input": ["ok", ""]}, "input"),
        ({"model": "tiny", "input": "a" * (MAX_TEXT_CHARS + 1)}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "", "input": "x"}, "model"),
        ({"model": "tiny", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "tiny", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "tiny", "input": "x", "dimensions": 10**300}, "dimensions"),
        ({"model": "tiny", "input": "x", "dimension": 32}, "dimension"),
    ],
)
def test_invalid_requests_are_422_saying_what_is_wrong(client: TestClient, body: dict, words: str) -> None:
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_request") and words in err["message"]
    assert err["param"]  # the field at fault, for the client to show


def test_the_request_character_budget_holds(tiny_bundle: Path, make_settings) -> None:
    """/v1/encode's compute bound: more than MAX_REQUEST_CHARS together is refused before any tokenising."""
    texts = [f"{i} ".ljust(MAX_TEXT_CHARS, "x") for i in range(MAX_REQUEST_CHARS // MAX_TEXT_CHARS + 1)]
    with TestClient(create_app(make_settings(tiny_bundle))) as c:  # the default 1 MiB body limit
        r = c.post("/v1/embeddings", json={"model": "tiny", "input": texts})
        assert r.status_code == 422 and f"the limit is {MAX_REQUEST_CHARS} per request" in r.json()["error"]["message"]
        assert c.app.state.edge.cache.misses == 0  # not one text reached the tokenizer
        r = c.post("/v1/embeddings", json={"model": "tiny", "input": texts[:-1]})
        assert r.status_code == 200 and len(r.json()["data"]) == len(texts) - 1


def test_malformed_oversized_and_private_bodies(client: TestClient) -> None:
    r = client.post("/v1/embeddings", content=b'{"input": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
    r = client.post("/v1/embeddings", content=b"\xff\xfe{}", headers={"content-type": "application/json"})
    assert r.status_code == 422
    for path, body in (("/v1/embeddings", b'{"model": "tiny", "input": "x"}'), ("/v1/encode", b'{"texts": ["x"]}')):
        r = client.post(path, content=body, headers={"content-type": "text/plain"})  # a simple cross-origin POST
        err = r.json()["error"]  # OpenAI's shape on /v1/embeddings, the shared one elsewhere
        assert r.status_code == 415 and (err if path == "/v1/encode" else err["code"]) == "unsupported_media_type"
    ok = client.post("/v1/encode", content=b'{"texts": ["x"]}', headers={"content-type": "application/json; x=1"})
    assert ok.status_code == 200
    r = client.post("/v1/embeddings", content=b"x" * 70000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"  # from the body limit
    secret = "my diagnosis is confidential " * 100
    r = client.post("/v1/embeddings", json={"model": "tiny", "input": [secret]})
    assert r.status_code == 422 and "confidential" not in r.text
