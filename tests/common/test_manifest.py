from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.common.errors import BundleError
from service.common.manifest import read_manifest, sha256_file, verify_bundle


def test_sha256_of_known_bytes(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_written_manifest_round_trips_and_verifies(tiny_bundle: Path) -> None:
    m = verify_bundle(tiny_bundle)
    assert m.name == "tiny" and m.dim == 32
    assert set(m.files) == {"model.onnx", "tokenizer.json"}
    assert m.files["model.onnx"].bytes == (tiny_bundle / "model.onnx").stat().st_size
    assert m.build["versions"]["onnxruntime"] != "absent"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no manifest.json"),
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1}', "invalid manifest"),
    ],
)
def test_broken_manifests(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(BundleError, match=message):
        read_manifest(tmp_path)


def test_missing_listed_file(tiny_bundle: Path, tmp_path: Path) -> None:
    raw = json.loads((tiny_bundle / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(tmp_path)
