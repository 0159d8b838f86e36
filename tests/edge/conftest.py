"""Edge fixtures: a second real bundle that differs from `tiny_bundle` (other weights, other width), settings
factories, and the anyio backend for async tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.edge.config import EdgeSettings

OTHER_DIM = 16


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_edge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test alone, never from a developer's EIBERT_EDGE_* variables."""
    import os

    for name in list(os.environ):
        if name.startswith("EIBERT_EDGE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def other_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny bundle: 16 wide, seed 1, version 0.0.2, so every row says which model made it."""
    import torch
    from transformers import BertConfig, BertModel

    from model_store.export import export_onnx
    from model_store.teacher import teacher_dir
    from model_store.token_pooling import PooledEncoder
    from service.common.manifest import write_bundle

    torch.manual_seed(1)
    config = BertConfig(
        vocab_size=30522, hidden_size=OTHER_DIM, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    module = PooledEncoder(BertModel(config, add_pooling_layer=False)).eval()
    out = tmp_path_factory.mktemp("other-bundle")
    export_onnx(module, out / "model.onnx", vocab_size=30522)
    write_bundle(
        out,
        model_onnx=out / "model.onnx",
        tokenizer_json=teacher_dir() / "tokenizer.json",
        name="other",
        version="0.0.2",
        dim=OTHER_DIM,
        max_length=64,
        teacher="random",
        build={"command": "tests/edge/conftest.py::other_bundle"},
    )
    return out


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., EdgeSettings]:
    """EdgeSettings for one test, with its device state under tmp_path."""

    def make(bundle: Path, **overrides) -> EdgeSettings:
        return EdgeSettings(bundle=bundle, state_dir=tmp_path / "edge-state", **overrides)

    return make
