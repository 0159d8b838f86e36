from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from service.common.archive import ALLOWED_NAMES, MAX_HEADERS, MAX_MEMBER_BYTES, pack_bundle, unpack_bundle
from service.common.errors import BundleError
from service.common.manifest import verify_bundle
from tests.common.archive_bombs import extended_header_bomb, gzip_of_header_then_zeros
from tests.rss import peak_rss_growth


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


# -- issue 11: bounded headers, member types and expansion ------------------------------------------------


@pytest.mark.parametrize(
    "kind", [tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "pax-global", "gnu-longname"]
)
def test_a_gigabyte_extended_header_is_refused_before_it_is_read(tmp_path: Path, kind: bytes) -> None:
    bomb = extended_header_bomb(kind)
    assert len(bomb) < 2 * 1024 * 1024  # ~1 MB on the wire for a 1 GiB header
    with peak_rss_growth() as growth, pytest.raises(BundleError, match="the limit is 4,096 bytes"):
        unpack_bundle(bomb, tmp_path / "out")
    assert growth.mib < 200, f"unpacking grew the process by {growth.mib:.0f} MiB"


def _tar_with(members: list[tuple[tarfile.TarInfo, bytes]], **open_args) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", **open_args) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()


def _bundle_members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    for name in sorted(n for n in ALLOWED_NAMES if (bundle / n).is_file()):
        info, data = _file(name, (bundle / name).read_bytes())
        out.append((info, data))
    return out


def test_small_pax_headers_that_rename_nothing_are_accepted(tiny_bundle: Path, tmp_path: Path) -> None:
    members = _bundle_members(tiny_bundle)
    for info, _ in members:
        info.pax_headers = {"comment": "packed by another tool", "mtime": "1700000000.5"}
    archive = _tar_with(members, format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"})
    assert verify_bundle(unpack_bundle(archive, tmp_path / "out")).name == "tiny"


@pytest.mark.parametrize(
    ("pax", "message"),
    [
        ({"path": "model.onnx"}, "'path' record"),
        ({"size": "99999999999"}, "'size' record"),
        ({"linkpath": "/etc/passwd"}, "'linkpath' record"),
        ({"GNU.sparse.map": "0,1"}, "'GNU.sparse.map' record"),
    ],
)
def test_pax_records_that_rename_or_resize_a_member_are_refused(tmp_path: Path, pax: dict, message: str) -> None:
    info, data = _file("model.onnx")
    info.pax_headers = pax
    with pytest.raises(BundleError, match=message):
        unpack_bundle(_tar_with([(info, data)], format=tarfile.PAX_FORMAT), tmp_path / "out")


def test_gnu_long_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="GNU long name"):
        unpack_bundle(_tar_with([_file("m" * 150)], format=tarfile.GNU_FORMAT), tmp_path / "out")


def test_malformed_pax_header_is_refused(tmp_path: Path) -> None:
    info, payload = _pax_header("comment", "short")
    payload = b"999" + payload[2:]  # a record length that runs past the header
    with pytest.raises(BundleError, match="malformed PAX"):
        unpack_bundle(_tar_with([(info, payload)]), tmp_path / "out")


@pytest.mark.parametrize(
    "kind", [tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE]
)
def test_member_types_other_than_regular_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("model.onnx")
    info.type = kind
    with pytest.raises(BundleError, match="not a regular file"):
        unpack_bundle(_tar_with([(info, b"")]), tmp_path / "out")
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_a_member_larger_than_the_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    info = tarfile.TarInfo("model.onnx")
    info.size = MAX_MEMBER_BYTES + 1
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    with pytest.raises(BundleError, match="limit 67,108,864"):
        unpack_bundle(gzip_of_header_then_zeros(header, 1024), tmp_path / "out")


def test_total_expansion_is_capped(tiny_bundle: Path, tmp_path: Path) -> None:
    """A valid bundle followed by 200 MB of zeros (after the end-of-archive marker): still refused, in bounded
    memory, because the inflated stream as a whole has a cap."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in _bundle_members(tiny_bundle):
            tar.addfile(info, io.BytesIO(data))
    with peak_rss_growth() as growth, pytest.raises(BundleError, match="inflates to more than"):
        unpack_bundle(gzip_of_header_then_zeros(raw.getvalue(), 200 * 1024 * 1024), tmp_path / "out")
    assert growth.mib < 200


def _pax_header(key: str, value: str) -> tuple[tarfile.TarInfo, bytes]:
    """A bare PAX header block holding one `"%d %s=%s\\n"` record (the length counts its own digits)."""
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while n != len(str(n)) + len(body):
        n = len(str(n)) + len(body)
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    payload = str(n).encode() + body
    info.size = len(payload)
    return info, payload


def test_header_count_is_capped(tmp_path: Path) -> None:
    members = [_pax_header("comment", str(i)) for i in range(MAX_HEADERS + 1)]
    with pytest.raises(BundleError, match=f"more than {MAX_HEADERS} headers"):
        unpack_bundle(_tar_with(members), tmp_path / "out")


def test_bytes_after_the_gzip_stream_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="after its gzip stream"):
        unpack_bundle(pack_bundle(tiny_bundle) + b"trailing", tmp_path / "out")


def test_a_negative_base256_size_is_refused(tmp_path: Path) -> None:
    header = bytearray(tarfile.TarInfo("model.onnx").tobuf(format=tarfile.USTAR_FORMAT))
    header[124:136] = b"\xff" * 12  # GNU base-256: -1
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    with pytest.raises(BundleError, match="negative size"):
        unpack_bundle(gzip_of_header_then_zeros(bytes(header), 1024), tmp_path / "out")


def test_an_optional_ranker_travels_and_an_unknown_file_does_not(tiny_bundle: Path, tmp_path: Path) -> None:
    from service.common.contract import RANKER_FILE

    with_ranker = tmp_path / "with-ranker"
    shutil.copytree(tiny_bundle, with_ranker)
    (with_ranker / RANKER_FILE).write_text("{}")
    out = unpack_bundle(pack_bundle(with_ranker), tmp_path / "out")
    assert (out / RANKER_FILE).read_text() == "{}"
    assert not (unpack_bundle(pack_bundle(tiny_bundle), tmp_path / "plain") / RANKER_FILE).exists()
