"""Shared fixtures: the real data root, and a tiny but real bundle (random BERT exported to ONNX)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store.data.paths import data_root

FIXTURES = Path(__file__).parent / "fixtures"
TINY_DIM = 32
TINY_MAX_LENGTH = 64


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return data_root()


def make_tiny_module():
    """A 2-layer, 32-wide BERT with the teacher's vocabulary; seeded, so two calls give the same weights."""
    import torch
    from transformers import BertConfig, BertModel

    from model_store.token_pooling import PooledEncoder

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=TINY_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    return PooledEncoder(BertModel(config, add_pooling_layer=False)).eval()


@pytest.fixture(scope="session")
def tiny_torch_module():
    return make_tiny_module()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_torch_module) -> Path:
    """The tiny module exported through the real bundle path (random weights: plumbing, not quality)."""
    from model_store.export import export_onnx
    from model_store.teacher import teacher_dir
    from service.common.manifest import write_bundle

    out = tmp_path_factory.mktemp("tiny-bundle")
    export_onnx(tiny_torch_module, out / "model.onnx", vocab_size=30522)
    write_bundle(
        out,
        model_onnx=out / "model.onnx",
        tokenizer_json=teacher_dir() / "tokenizer.json",
        name="tiny",
        version="0.0.1",
        dim=TINY_DIM,
        max_length=TINY_MAX_LENGTH,
        teacher="random",
        build={"command": "tests/conftest.py::tiny_bundle"},
    )
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest files run first: the quick build's (minutes), then those holding `slow` tests. Under
    pytest-xdist (`make test` runs two workers, a file at a time each) the build then starts at once instead of
    late, while the other worker works through the rest."""
    build_files = {item.path for item in items if "quick_build" in getattr(item, "fixturenames", ())}
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in build_files, item.path not in slow_files))  # stable sort
