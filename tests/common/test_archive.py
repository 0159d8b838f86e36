from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from service.common.archive import pack_bundle, unpack_bundle
from service.common.errors import BundleError
from service.common.manifest import verify_bundle


def test_pack_is_deterministic_and_round_trips(tiny_bundle: Path, tmp_path: Path) -> None:
    a, b = pack_bundle(tiny_bundle), pack_bundle(tiny_bundle)
    assert a == b
    out = unpack_bundle(a, tmp_path / "out")
    assert verify_bundle(out).name == "tiny"


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_file("../model.onnx")], "not one of"),
        ([_file("/etc/passwd")], "not one of"),
        ([_link("model.onnx", "/etc/passwd", tarfile.SYMTYPE)], "not a regular file"),
        ([_link("model.onnx", "tokenizer.json", tarfile.LNKTYPE)], "not a regular file"),
        ([_file("model.onnx"), _file("model.onnx")], "appears twice"),
        ([_file("model.onnx")], "lacks"),
    ],
)
def test_hostile_archives_are_refused(tmp_path: Path, members, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        unpack_bundle(_tar(members), tmp_path / "out")
    assert not (tmp_path / "etc").exists()


def test_truncated_and_non_archives(tiny_bundle: Path, tmp_path: Path) -> None:
    data = pack_bundle(tiny_bundle)
    with pytest.raises(BundleError):
        unpack_bundle(data[: len(data) // 2], tmp_path / "a")
    with pytest.raises(BundleError, match="not a gzip"):
        unpack_bundle(b"hello", tmp_path / "b")
