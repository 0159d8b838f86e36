"""The README's edge examples are what the shipped bundle answers: each request in the README is sent to an edge
node serving `model_store.shipped.SHIPPED_BUNDLE`, and the answer printed under it in the README must match (the
version exactly, scores and leading vector values to the decimals the README prints). A new shipped bundle, or a
change to the ranker, fails here until the README is regenerated."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from model_store.shipped import SHIPPED_BUNDLE
from service.edge.app import create_app
from service.edge.config import EdgeSettings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def example(route: str, readme: str = README) -> tuple[dict, str]:
    """The JSON body of the README's `curl .../v1/<route>` example and the `# ...` answer line printed after it."""
    m = re.search(rf"curl -s \S+/v1/{route} .*?-d '(.*?)'\n# (.*?)\n", readme, flags=re.S)
    assert m, f"no /v1/{route} example in the README"
    return json.loads(m.group(1)), m.group(2)


def openai_line(readme: str = README) -> str:
    m = re.search(r"res\.usage\.prompt_tokens\)  # (.*)\n", readme)
    assert m, "no OpenAI client example in the README"
    return m.group(1)


def problems(client: TestClient, readme: str = README) -> list[str]:
    out: list[str] = []
    body, shown = example("encode", readme)
    got = client.post("/v1/encode", json=body).json()
    shown_version = re.search(r'"model_version":"([^"]+)"', shown)
    lead = [float(x) for x in re.search(r'"embeddings":\[\[([-0-9.,]+),\.\.\.', shown).group(1).split(",")]
    if shown_version is None or shown_version.group(1) != got["model_version"] or f'"dim":{got["dim"]}' not in shown:
        out.append(f"encode: the README shows {shown}, the node answers {got['model_version']} dim {got['dim']}")
    if any(abs(a - b) > 6e-4 for a, b in zip(lead, got["embeddings"][0], strict=False)):
        out.append(f"encode: the README's first values {lead} are not the node's {got['embeddings'][0][:3]}")
    body, shown = example("rank", readme)
    got, want = client.post("/v1/rank", json=body).json(), json.loads(shown)
    if got["model_version"] != want["model_version"] or [i["id"] for i in got["items"]] != [
        i["id"] for i in want["items"]
    ]:
        out.append(f"rank: the README shows {shown}, the node answers {got}")
    elif any(abs(a["score"] - b["score"]) > 1e-4 for a, b in zip(got["items"], want["items"], strict=True)):
        out.append(f"rank: scores differ: README {want['items']}, node {got['items']}")
    res = client.post("/v1/embeddings", json={"model": "eibert", "input": ["Toy Story (1995)", "Matrix, The (1999)"]})
    got = res.json()
    expected = f"{got['model']} {len(got['data'][0]['embedding'])} {got['usage']['prompt_tokens']}"
    if openai_line(readme) != expected:
        out.append(f"embeddings: the README prints {openai_line(readme)!r}, the node gives {expected!r}")
    return out


@pytest.fixture(scope="module")
def shipped_edge(tmp_path_factory: pytest.TempPathFactory):
    settings = EdgeSettings(bundle=SHIPPED_BUNDLE, state_dir=tmp_path_factory.mktemp("edge-state"))
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_readme_examples_are_what_the_shipped_bundle_answers(shipped_edge: TestClient) -> None:
    assert problems(shipped_edge) == []


VERSION = SHIPPED_BUNDLE.name  # what the README's answers must name: the release id, e.g. "eibert-0.4.0"
FIRST_SCORE = re.search(r'"score":-?[0-9.]+', example("rank")[1]).group(0)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f'"model_version":"{VERSION}","dim"', '"model_version":"eibert-0.1.0","dim"'),  # a stale version
        (FIRST_SCORE, '"score":0.956262'),  # a stale score
        (f"# {SHIPPED_BUNDLE.name} ", "# eibert-0.1.0 "),  # a stale model name
    ],
    ids=["version", "score", "model-name"],
)
def test_a_stale_example_is_found(shipped_edge: TestClient, old: str, new: str) -> None:
    assert old in README
    assert problems(shipped_edge, README.replace(old, new))


def limits_problems(readme: str = README) -> list[str]:
    """The README's table of request limits states the constants the schemas enforce."""
    from service.edge import schemas as s
    from service.edge.config import EdgeSettings

    body_mib = EdgeSettings.model_fields["max_body_bytes"].default // (1024 * 1024)
    section = readme[readme.index("Limits of one request") : readme.index("**One name per release.**")]
    want = [
        f"1-{s.MAX_TEXTS} texts, each 1-{s.MAX_TEXT_CHARS:,} characters",
        f"at most {s.MAX_BEHAVIORS:,} behaviours, 1-{s.MAX_CANDIDATES} candidates, `top_k` 1-{s.MAX_TOP_K}",
        f"| {s.MAX_REQUEST_CHARS:,} characters |",
        f"| {body_mib} MiB (`EIBERT_EDGE_MAX_BODY_BYTES`) |",
    ]
    return [f"the README's limits table does not say {w!r}" for w in want if w not in section]


def test_the_readme_limits_are_the_schemas() -> None:
    assert limits_problems() == []
    assert limits_problems(README.replace("1-64 texts", "1-100 texts"))
