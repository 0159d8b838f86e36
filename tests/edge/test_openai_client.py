"""The official `openai` client against a real running edge node (uvicorn on a free port, over HTTP).

`embeddings.create` asks for base64 by default and decodes it itself, so this checks the wire format as the
client reads it, not as our own tests would: its vectors must be /v1/encode's (cosine > 0.9999), and the
node's refusals must surface as the client's typed errors, with our message.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from service.edge.app import create_app
from service.edge.config import EdgeSettings
from tests.conftest import TINY_DIM
from tests.simulators.conftest import Served, serve, stop

TEXTS = ["a man plays a guitar", "the quick brown fox jumps over the lazy dog", "x", "a man plays a guitar"]


@pytest.fixture(scope="module")
def edge(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(create_app(EdgeSettings(bundle=tiny_bundle, state_dir=tmp_path_factory.mktemp("edge"))))
    yield served
    stop(served)


@pytest.fixture(scope="module")
def client(edge: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{edge.url}/v1", api_key="x", max_retries=0, timeout=30) as c:
        yield c


def encoded(edge: Served, texts: list[str]) -> np.ndarray:
    r = httpx.post(f"{edge.url}/v1/encode", json={"texts": texts}, timeout=30)
    r.raise_for_status()
    return np.array(r.json()["embeddings"], dtype=np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_the_client_gets_encodes_vectors(edge: Served, client: openai.OpenAI, encoding_format: str | None) -> None:
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}  # None: the client's base64
    res = client.embeddings.create(model="tiny", input=TEXTS, **kwargs)
    assert res.model == "tiny-0.0.1" and [d.index for d in res.data] == list(range(len(TEXTS)))
    got = res.data
    if encoding_format == "base64":  # asked for explicitly, the client hands the strings over as they came
        rows = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in got])
    else:
        rows = np.array([d.embedding for d in got], dtype=np.float64)
    assert rows.shape == (len(TEXTS), TINY_DIM)
    assert cosines(rows, encoded(edge, TEXTS)).min() > 0.9999
    assert res.usage.prompt_tokens == res.usage.total_tokens > 2 * len(TEXTS)


def test_a_single_string_and_the_model_dimension(edge: Served, client: openai.OpenAI) -> None:
    res = client.embeddings.create(model="tiny-0.0.1", input="one text", dimensions=TINY_DIM)
    assert len(res.data) == 1
    assert cosines(np.array([res.data[0].embedding]), encoded(edge, ["one text"]))[0] > 0.9999


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"model": "tiny", "input": "x", "dimensions": 8}, openai.BadRequestError, f"{TINY_DIM}-dimensional"),
        ({"model": "text-embedding-3-small", "input": "x"}, openai.NotFoundError, "not served here"),
        ({"model": "tiny", "input": [[101, 102]]}, openai.UnprocessableEntityError, "token ids"),
    ],
)
def test_refusals_are_the_clients_typed_errors(client: openai.OpenAI, kwargs: dict, error, words: str) -> None:
    # The body is OpenAI's nested {"error": {"message", "type", "param", "code"}}, which the client reads into
    # the exception's message and fields (given the project's flat shape it showed only "Error code: 404").
    with pytest.raises(error) as info:
        client.embeddings.create(**kwargs)
    assert words in info.value.message and words in str(info.value)
    assert info.value.type == "invalid_request_error" and info.value.param in ("dimensions", "model", "input")
