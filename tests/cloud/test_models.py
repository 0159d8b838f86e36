"""Registry over HTTP, on both stores: admin auth, admission checks, immutability, bundle download."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.cloud.store.sqlite import sqlite_path
from service.common.archive import pack_bundle
from service.common.manifest import file_entry
from service.common.signing import public_key_from_b64, verify_manifest_signature
from tests.cloud.conftest import ADMIN, GZIP, publish


def test_upload_needs_the_admin_token(client: TestClient, tiny_archive: bytes) -> None:
    assert client.post("/v1/models", content=tiny_archive, headers=GZIP).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
    assert client.post("/v1/models", content=tiny_archive, headers={**wrong, **GZIP}).status_code == 403
    assert client.get("/v1/models").json() == {"data": [], "count": 0}


def test_upload_registers_a_signed_immutable_version(client: TestClient, tiny_archive: bytes) -> None:
    resp = client.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["version"] == "tiny-0.0.1"
    assert body["bundle_sha256"] == hashlib.sha256(tiny_archive).hexdigest()
    assert body["bundle_bytes"] == len(tiny_archive)
    key = public_key_from_b64(client.get("/v1/signing-key").json()["public_key"])
    verify_manifest_signature(body["manifest"], body["signature"], key)  # raises if it does not verify

    again = client.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP})
    assert again.status_code == 200 and again.json()["registered_at"] == body["registered_at"]
    listed = client.get("/v1/models").json()
    assert listed["count"] == 1 and listed["data"][0]["version"] == "tiny-0.0.1"
    assert client.get("/v1/models/tiny-0.0.1").json()["signature"] == body["signature"]
    assert client.get("/v1/models/nope-1").status_code == 404


def test_a_different_bundle_under_an_existing_version_is_409(
    client: TestClient, tiny_bundle: Path, tmp_path: Path
) -> None:
    publish(client, pack_bundle(tiny_bundle))
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["metrics"] = {"note": "same version string, different content"}
    (other / "manifest.json").write_text(json.dumps(manifest))
    resp = client.post("/v1/models", content=pack_bundle(other), headers={**ADMIN, **GZIP})
    assert resp.status_code == 409
    assert "immutable" in resp.json()["message"]


def _repack(bundle: Path, tmp_path: Path, edit: Callable[[Path], None], *, rehash: bool) -> bytes:
    out = tmp_path / "edited"
    shutil.copytree(bundle, out)
    edit(out)
    if rehash:
        manifest = json.loads((out / "manifest.json").read_text())
        for name in manifest["files"]:
            manifest["files"][name] = file_entry(out / name).model_dump()
        (out / "manifest.json").write_text(json.dumps(manifest))
    return pack_bundle(out)


def _flip_byte(out: Path) -> None:
    data = bytearray((out / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))


def _not_onnx(out: Path) -> None:
    (out / "model.onnx").write_bytes(b"definitely not a protobuf" * 10)


def _bad_tokenizer(out: Path) -> None:
    (out / "tokenizer.json").write_text("{not json")


@pytest.mark.parametrize(
    ("edit", "rehash", "message"),
    [
        (_flip_byte, False, "sha256 does not match"),
        (_not_onnx, True, "not a readable ONNX model"),
        (_bad_tokenizer, True, "not valid JSON"),
    ],
    ids=["tampered", "not-onnx", "bad-tokenizer"],
)
def test_unsound_bundles_are_refused(
    client: TestClient, tiny_bundle: Path, tmp_path: Path, edit, rehash: bool, message: str
) -> None:
    resp = client.post(
        "/v1/models", content=_repack(tiny_bundle, tmp_path, edit, rehash=rehash), headers={**ADMIN, **GZIP}
    )
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["message"]
    assert client.get("/v1/models").json()["count"] == 0


def test_onnx_that_breaks_the_contract_is_refused(client: TestClient, tiny_bundle: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 2])
    y = helper.make_tensor_value_info("sentence_embedding", TensorProto.INT64, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["ids"], ["sentence_embedding"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime of any supported release loads

    def wrong_inputs(out: Path) -> None:
        onnx.save(model, out / "model.onnx")

    resp = client.post(
        "/v1/models", content=_repack(tiny_bundle, tmp_path, wrong_inputs, rehash=True), headers={**ADMIN, **GZIP}
    )
    assert resp.status_code == 422
    assert "the contract needs" in resp.json()["message"]


def test_hostile_archive_is_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../etc/model.onnx")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    resp = client.post("/v1/models", content=buf.getvalue(), headers={**ADMIN, **GZIP})
    assert resp.status_code == 422 and "not one of" in resp.json()["message"]


def test_upload_checks_type_and_size(client: TestClient, tiny_archive: bytes) -> None:
    resp = client.post("/v1/models", content=tiny_archive, headers={**ADMIN, "Content-Type": "application/json"})
    assert resp.status_code == 415
    assert client.post("/v1/models", content=b"", headers={**ADMIN, **GZIP}).status_code == 422


def test_model_size_budget(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_model_bytes": 1_910_000}))) as c:
        resp = c.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP})
    assert resp.status_code == 422
    assert "size budget is 1,910,000" in resp.json()["message"]


def test_upload_body_limit(settings: Settings, tiny_archive: bytes) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 1000}))) as c:
        resp = c.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP})
        assert resp.status_code == 413

        def chunks():  # no Content-Length: the streamed byte count must still be enforced
            yield tiny_archive[:800]
            yield tiny_archive[800:1600]

        resp = c.post("/v1/models", content=chunks(), headers={**ADMIN, **GZIP})
        assert resp.status_code == 413
        assert c.get("/v1/models").json()["count"] == 0


def test_bundle_download_etag_and_ranges(client: TestClient, tiny_archive: bytes) -> None:
    version = publish(client, tiny_archive)
    url = f"/v1/models/{version}/bundle"
    resp = client.get(url)
    assert resp.status_code == 200
    assert resp.content == tiny_archive
    assert resp.headers["content-type"] == "application/gzip"
    etag = resp.headers["etag"]
    assert etag == f'"{hashlib.sha256(tiny_archive).hexdigest()}"'
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304

    part = client.get(url, headers={"Range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.content == tiny_archive[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(tiny_archive)}"
    tail = client.get(url, headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == tiny_archive[-50:]
    resume = client.get(url, headers={"Range": f"bytes={len(tiny_archive) - 7}-"})
    assert resume.content == tiny_archive[-7:]
    assert client.get(url, headers={"Range": f"bytes={len(tiny_archive) + 5}-"}).status_code == 416
    assert client.get("/v1/models/nope-1/bundle").status_code == 404


def stored_blob(client: TestClient, sha: str) -> bytes | None:
    """The blob as the store holds it (the source of truth every replica reads), not this replica's cache."""
    return client.portal.call(client.app.state.ctx.store.get_blob, sha)


def drop_from_store(settings: Settings, sha: str) -> None:
    """Delete a blob behind the store's back (the API never deletes one): the state of a blob stored before
    blobs lived in the store."""
    url = settings.resolved_store_url()
    if url.startswith("redis://"):
        r = redis.Redis.from_url(url)
        r.delete(f"{settings.redis_prefix}blob:{sha}")
        r.close()
        return
    conn = sqlite3.connect(sqlite_path(url))
    with conn:
        conn.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
    conn.close()


def test_blob_is_content_addressed_in_the_store_and_cached_on_disk(
    client: TestClient, settings: Settings, tiny_archive: bytes, tiny_bundle: Path
) -> None:
    publish(client, tiny_archive)
    for data in (tiny_archive, *((tiny_bundle / n).read_bytes() for n in ("model.onnx", "tokenizer.json"))):
        sha = hashlib.sha256(data).hexdigest()
        assert stored_blob(client, sha) == data  # each file, as devices fetch it, from any replica
        assert (settings.data_dir / "blobs" / sha[:2] / sha).read_bytes() == data  # the local cache
    assert not list((settings.data_dir / "blobs").rglob("*.tmp"))


def test_a_lost_cache_is_refilled_from_the_store(
    client: TestClient, settings: Settings, tiny_archive: bytes, tiny_bundle: Path
) -> None:
    version = publish(client, tiny_archive)
    shutil.rmtree(settings.data_dir / "blobs")  # the cache is disposable: a fresh replica starts without one
    model = (tiny_bundle / "model.onnx").read_bytes()
    assert client.get(f"/v1/blobs/{hashlib.sha256(model).hexdigest()}").content == model
    part = client.get(f"/v1/models/{version}/bundle", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == tiny_archive[10:110]


def test_a_version_registered_before_file_blobs_gets_them_on_re_upload_and_keeps_its_archive(
    client: TestClient, settings: Settings, tiny_archive: bytes, tiny_bundle: Path
) -> None:
    version = publish(client, tiny_archive)
    blobs = settings.data_dir / "blobs"
    sha = hashlib.sha256(tiny_archive).hexdigest()
    drop_from_store(settings, sha)  # as if stored on local disk only, before blobs lived in the store
    (blobs / sha[:2] / sha).rename(blobs / sha[:2] / f"{sha}.tar.gz")  # the archive under its legacy name
    model_sha = hashlib.sha256((tiny_bundle / "model.onnx").read_bytes()).hexdigest()
    drop_from_store(settings, model_sha)  # as if stored before files were blobs of their own
    (blobs / model_sha[:2] / model_sha).unlink()
    assert client.get(f"/v1/blobs/{model_sha}").status_code == 404
    assert client.get(f"/v1/models/{version}/bundle").content == tiny_archive  # legacy name still served

    assert client.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP}).status_code == 200
    blob = client.get(f"/v1/blobs/{model_sha}")
    assert blob.status_code == 200 and blob.content == (tiny_bundle / "model.onnx").read_bytes()
    assert stored_blob(client, sha) == tiny_archive  # the same archive re-uploaded puts it in the store too


def test_bad_version_path_is_a_clear_4xx(client: TestClient) -> None:
    resp = client.get("/v1/models/bad%20version!")
    assert resp.status_code == 422
    body = resp.json()  # the shared error shape (service.common.http_errors)
    assert body["error"] == "invalid_request" and body["message"].startswith("path.version:")
    assert [e["loc"] for e in body["errors"]] == ["path.version"]


def test_same_bundle_packed_anew_is_idempotent(client: TestClient, tiny_bundle: Path, tiny_archive: bytes) -> None:
    """Re-packing gives different gzip bytes (header timestamp); the manifest decides sameness."""
    import gzip

    raw_tar = gzip.decompress(tiny_archive)
    repacked = gzip.compress(raw_tar, mtime=12345)
    assert repacked != tiny_archive
    first = client.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP})
    second = client.post("/v1/models", content=repacked, headers={**ADMIN, **GZIP})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["bundle_sha256"] == first.json()["bundle_sha256"]
