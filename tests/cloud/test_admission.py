"""Issue 11 on the cloud: hostile uploads to `POST /v1/models` get a 4xx naming the limit, the cloud process
stays small and healthy, and admission never holds the upload lock (a slow upload does not block others).

Admission does not depend on the store, so these run on SQLite only."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.archive import pack_bundle
from service.common.manifest import file_entry
from service.common.model_admission import DEFAULT_ALLOWED_OPS, AdmissionLimits
from tests.cloud.conftest import ADMIN, GZIP
from tests.common import model_bombs
from tests.common.archive_bombs import extended_header_bomb
from tests.common.model_bombs import bundle_with_model, loop_bomb, memory_bomb
from tests.conftest import TINY_DIM
from tests.rss import peak_rss_growth

UPLOAD = {**ADMIN, **GZIP}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cloud.db'}"


@pytest.fixture
def bomb_archive(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., bytes]:
    def make(write_model: Callable[[Path], object], **manifest: object) -> bytes:
        out = tmp_path_factory.mktemp("bomb") / "bundle"
        return pack_bundle(bundle_with_model(tiny_bundle, out, write_model, **manifest))

    return make


def _app(settings: Settings, **update: object) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update=update))) as c:
        yield c


def _still_serving(client: TestClient, tiny_archive: bytes) -> None:
    assert client.get("/healthz").status_code == 200
    resp = client.post("/v1/models", content=tiny_archive, headers=UPLOAD)
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "gnu-longname"])
def test_a_header_bomb_upload_is_a_422_in_bounded_memory(client: TestClient, tiny_archive: bytes, kind) -> None:
    bomb = extended_header_bomb(kind)
    with peak_rss_growth() as growth:
        resp = client.post("/v1/models", content=bomb, headers=UPLOAD)
    assert resp.status_code == 422, resp.text
    assert "extended header" in resp.text and "the limit is 4,096 bytes" in resp.text
    assert growth.mib < 200, f"the cloud grew by {growth.mib:.0f} MiB"
    _still_serving(client, tiny_archive)


def test_a_memory_bomb_model_is_a_422_and_the_cloud_stays_small(
    client: TestClient, bomb_archive, tiny_archive: bytes
) -> None:
    archive = bomb_archive(lambda p: memory_bomb(p, TINY_DIM))
    with peak_rss_growth() as growth:
        resp = client.post("/v1/models", content=archive, headers=UPLOAD)
    assert resp.status_code == 422, resp.text
    assert "512 MiB admission memory limit" in resp.text
    assert growth.mib < 200, f"the cloud grew by {growth.mib:.0f} MiB"
    assert client.get("/v1/models").json()["count"] == 0
    _still_serving(client, tiny_archive)


def test_a_model_giving_one_vector_for_every_text_is_refused(client: TestClient, bomb_archive) -> None:
    resp = client.post(
        "/v1/models", content=bomb_archive(lambda p: memory_bomb(p, TINY_DIM, elements=4)), headers=UPLOAD
    )
    assert resp.status_code == 422 and "same vector for different inputs" in resp.text


def test_a_loop_is_refused_statically_by_default(client: TestClient, bomb_archive) -> None:
    t0 = time.perf_counter()
    resp = client.post("/v1/models", content=bomb_archive(lambda p: loop_bomb(p, TINY_DIM)), headers=UPLOAD)
    assert resp.status_code == 422 and "outside the admission allow-list: Loop" in resp.text
    assert time.perf_counter() - t0 < 10


def _post_in_thread(client: TestClient, archive: bytes) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: out.append(client.post("/v1/models", content=archive, headers=UPLOAD)))
    thread.start()
    return thread, out


def _wait_for_admission(client: TestClient) -> None:
    """Until the upload started in another thread is being admitted (its trial child is running)."""
    deadline = time.monotonic() + 10
    while client.app.state.ctx.registry.admissions_in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.app.state.ctx.registry.admissions_in_flight > 0


def test_a_loop_bomb_times_out_while_an_honest_upload_completes(
    settings: Settings, bomb_archive, tiny_archive: bytes
) -> None:
    """With Loop allow-listed, the trial runs until its timeout; meanwhile another upload is admitted (the
    upload lock is not held across admission)."""
    limits = AdmissionLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {"Loop"}, timeout_s=8)
    for client in _app(settings, admission=limits, max_concurrent_admissions=2):
        thread, bomb_resp = _post_in_thread(client, bomb_archive(lambda p: loop_bomb(p, TINY_DIM), version="9.9.9"))
        _wait_for_admission(client)
        t0 = time.perf_counter()
        honest = client.post("/v1/models", content=tiny_archive, headers=UPLOAD)
        assert honest.status_code == 201, honest.text
        assert thread.is_alive(), "the honest upload should finish while the loop bomb is still being tried"
        thread.join(30)
        assert bomb_resp and bomb_resp[0].status_code == 422, bomb_resp
        assert "within the 8 s admission time limit" in bomb_resp[0].text
        assert time.perf_counter() - t0 < 30
        assert [m["version"] for m in client.get("/v1/models").json()["data"]] == ["tiny-0.0.1"]


def test_admissions_beyond_the_limit_get_429_with_retry_after(
    settings: Settings, bomb_archive, tiny_archive: bytes
) -> None:
    limits = AdmissionLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {"Loop"}, timeout_s=4)
    for client in _app(settings, admission=limits, max_concurrent_admissions=1):
        thread, bomb_resp = _post_in_thread(client, bomb_archive(lambda p: loop_bomb(p, TINY_DIM)))
        _wait_for_admission(client)
        busy = client.post("/v1/models", content=tiny_archive, headers=UPLOAD)
        assert busy.status_code == 429, busy.text
        assert busy.headers["retry-after"] == "4" and "admission slot" in busy.text
        thread.join(30)
        assert bomb_resp[0].status_code == 422
        _still_serving(client, tiny_archive)  # the slot is free again


@pytest.mark.parametrize("file", ["manifest.json", "tokenizer.json"])
def test_deeply_nested_json_in_a_bundle_is_a_422(client: TestClient, tiny_bundle: Path, tmp_path: Path, file) -> None:
    out = tmp_path / "deep"
    out.mkdir()
    for name in ("manifest.json", "tokenizer.json", "model.onnx"):
        (out / name).write_bytes((tiny_bundle / name).read_bytes())
    if file == "manifest.json":
        raw = json.loads((out / "manifest.json").read_text())
        (out / "manifest.json").write_text(json.dumps(raw)[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}")
    else:
        (out / "tokenizer.json").write_text('{"model": ' + "[" * 5000 + "]" * 5000 + "}")
        raw = json.loads((out / "manifest.json").read_text())
        raw["files"]["tokenizer.json"] = file_entry(out / "tokenizer.json").model_dump()
        (out / "manifest.json").write_text(json.dumps(raw))
    resp = client.post("/v1/models", content=pack_bundle(out), headers=UPLOAD)
    assert resp.status_code == 422, resp.text
    assert "nests deeper than the limit of 32 levels" in resp.text


def _tar(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        (_tar(_member("../model.onnx")), "not one of"),
        (_tar(_member("/etc/model.onnx")), "not one of"),
        (_tar(_member("model.onnx", tarfile.SYMTYPE, "/etc/passwd")), "not a regular file"),
        (_tar(_member("model.onnx", tarfile.LNKTYPE, "tokenizer.json")), "not a regular file"),
        (_tar(_member("model.onnx"), _member("model.onnx")), "appears twice"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink", "duplicate"],
)
def test_archive_rows_that_held_still_hold(client: TestClient, archive: bytes, message: str) -> None:
    resp = client.post("/v1/models", content=archive, headers=UPLOAD)
    assert resp.status_code == 422 and message in resp.text


def test_admission_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EIBERT_CLOUD_ADMISSION", '{"timeout_s": 5, "memory_mib": 256}')
    monkeypatch.setenv("EIBERT_CLOUD_MAX_CONCURRENT_ADMISSIONS", "3")
    s = Settings(dev_mode=True, data_dir=tmp_path)
    assert s.admission.timeout_s == 5 and s.admission.memory_mib == 256 and s.max_concurrent_admissions == 3
    assert s.admission.allowed_ops == DEFAULT_ALLOWED_OPS


@pytest.mark.parametrize("breakage", ["tokenizer-not-json", "sha256-mismatch"])
def test_an_upload_refusal_does_not_echo_the_clouds_temporary_paths(
    client: TestClient, tiny_bundle: Path, tmp_path: Path, breakage: str
) -> None:
    """Issue 22: refusals named the replica's absolute temp dir (`.../tmp/inspect-xyz/bundle/tokenizer.json`)."""
    bundle = tmp_path / "bundle"
    bundle_with_model(tiny_bundle, bundle, lambda p: p.write_bytes((tiny_bundle / "model.onnx").read_bytes()))
    if breakage == "tokenizer-not-json":
        (bundle / "tokenizer.json").write_bytes(b"{not json")
        raw = json.loads((bundle / "manifest.json").read_text())
        raw["files"]["tokenizer.json"] = file_entry(bundle / "tokenizer.json").model_dump()
        (bundle / "manifest.json").write_text(json.dumps(raw))
    else:
        (bundle / "tokenizer.json").write_bytes((bundle / "tokenizer.json").read_bytes() + b" ")
    resp = client.post("/v1/models", content=pack_bundle(bundle), headers=UPLOAD)
    assert resp.status_code == 422, resp.text
    assert "tokenizer.json" in resp.text
    assert "inspect-" not in resp.text and "/tmp" not in resp.text and str(tmp_path) not in resp.text, resp.text


@pytest.mark.parametrize("kind", ["regex-tokenizer", "batch"])
def test_a_regex_tokenizer_or_a_batch_bomb_upload_is_a_422(
    client: TestClient, tiny_bundle: Path, tmp_path: Path, tiny_archive: bytes, kind: str
) -> None:
    """Issue 22: both were 201; the cloud now refuses them as the edge does."""
    if kind == "regex-tokenizer":
        hostile = model_bombs.hostile_tokenizer(tiny_bundle / "tokenizer.json")
        bundle, message = (
            model_bombs.bundle_with_tokenizer(tiny_bundle, tmp_path / "b", hostile),
            "pre_tokenizer 'Split'",
        )
    else:
        bomb = bundle_with_model(tiny_bundle, tmp_path / "b", lambda p: model_bombs.batch_bomb(p, TINY_DIM, 30522))
        bundle, message = bomb, "512 MiB admission memory limit"
    with peak_rss_growth() as growth:
        resp = client.post("/v1/models", content=pack_bundle(bundle), headers=UPLOAD)
    assert resp.status_code == 422 and message in resp.text, resp.text
    assert growth.mib < 200, f"the cloud grew by {growth.mib:.0f} MiB"
    _still_serving(client, tiny_archive)
