"""The bundle runtime: matches the PyTorch model it was exported from, refuses tampered bundles, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.common.errors import BundleError
from service.edge.encoder import OnnxEncoder
from tests.conftest import TINY_DIM

TEXTS = ["a man plays a guitar", "the quick brown fox jumps over the lazy dog twice", "x"]


def test_matches_torch_module(tiny_bundle: Path, tiny_torch_module) -> None:
    import torch

    enc = OnnxEncoder(tiny_bundle)
    got = enc.encode(TEXTS, batch_size=2)
    assert got.shape == (3, TINY_DIM)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    for text, row in zip(TEXTS, got, strict=True):
        e = enc.tokenizer.encode(text)
        ids = torch.tensor([e.ids[: sum(e.attention_mask)]])
        with torch.no_grad():
            ref = tiny_torch_module(ids, torch.ones_like(ids)).numpy()[0]
        assert float(ref @ row) > 0.99999


def test_order_and_padding_do_not_leak_between_rows(tiny_bundle: Path) -> None:
    enc = OnnxEncoder(tiny_bundle)
    together = enc.encode(TEXTS, batch_size=8)
    alone = np.vstack([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert enc.encode([]).shape == (0, TINY_DIM)


def test_truncates_to_manifest_max_length(tiny_bundle: Path) -> None:
    enc = OnnxEncoder(tiny_bundle)
    long_text = "word " * 500
    assert len(enc.tokenizer.encode(long_text).ids) == enc.max_length
    assert enc.encode([long_text]).shape == (1, TINY_DIM)


def _copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def test_flipped_byte_in_model_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    data = bytearray((b / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        OnnxEncoder(b)


def test_truncated_tokenizer_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    raw = (b / "tokenizer.json").read_bytes()
    (b / "tokenizer.json").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match="bytes"):
        OnnxEncoder(b)


def test_manifest_with_path_traversal_name_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["files"]["../model.onnx"] = manifest["files"]["model.onnx"]
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="plain file name"):
        OnnxEncoder(b)


def test_newer_schema_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _copy(tiny_bundle, tmp_path)
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="newer"):
        OnnxEncoder(b)


def test_garbage_model_with_matching_manifest_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path) -> None:
    from service.common.manifest import write_bundle

    b = _copy(tiny_bundle, tmp_path)
    (b / "model.onnx").write_bytes(b"not an onnx graph")
    write_bundle(
        b, model_onnx=b / "model.onnx", tokenizer_json=b / "tokenizer.json", name="bad", version="1",
        dim=TINY_DIM, max_length=64, teacher="none", build={},
    )  # fmt: skip
    with pytest.raises(BundleError, match="onnxruntime cannot load"):
        OnnxEncoder(b)


def test_edge_path_never_imports_torch(tiny_bundle: Path) -> None:
    code = (
        "import sys; from service.edge.encoder import OnnxEncoder; "
        f"e = OnnxEncoder({str(tiny_bundle)!r}); e.encode(['hello world']); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'model_store')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
