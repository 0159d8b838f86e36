"""Model updates against a test double of the cloud's device API: the happy path, then every way a download
or a server can be wrong, each of which must leave the old model serving and say what failed."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import struct
import tarfile
import tracemalloc
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.offer import MAX_OFFER_BYTES
from service.edge.metrics import EdgeMetrics
from service.edge.slot import ModelSlot, load_model
from service.edge.updater import CREDENTIALS_FILE, ModelUpdater
from tests.edge.cloud_double import CloudDouble, flip_byte

pytestmark = pytest.mark.anyio


def relabel(bundle: Path, dest: Path, version: str) -> Path:
    """Same files, another version in the manifest: a third bundle without another export."""
    shutil.copytree(bundle, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["version"] = version
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


def make_updater(cloud: CloudDouble, slot: ModelSlot, state: Path, **kw) -> ModelUpdater:
    kw.setdefault("metrics", EdgeMetrics())
    kw.setdefault("device_id", "dev-1")
    return ModelUpdater(
        client=cloud.client(),
        slot=slot,
        loader=lambda d: load_model(d),
        public_key=cloud.key.public_key(),
        state_dir=state,
        **kw,
    )


@pytest.fixture
def slot(tiny_bundle: Path) -> ModelSlot:
    return ModelSlot(load_model(tiny_bundle))


@pytest.fixture
def cloud(tiny_bundle: Path, other_bundle: Path) -> CloudDouble:
    c = CloudDouble()
    c.publish(tiny_bundle)
    c.publish(other_bundle)
    c.offer("0.0.2")
    return c


def failures(metrics: EdgeMetrics, stage: str) -> float:
    return metrics.registry.get_sample_value("eibert_edge_model_load_failures_total", {"stage": stage}) or 0.0


async def test_enrols_downloads_verifies_swaps_then_polls_with_etag(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    old = slot.current
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "updated"
    assert slot.current is not old and slot.current.manifest.version == "0.0.2" and slot.current.dim == 16
    assert slot.previous_version == "tiny-0.0.1"  # release ids, as the cloud names them
    assert slot.current.source.name.startswith("other-0.0.2-")  # bundle folders too
    assert slot.current.source.parent == tmp_path / "state" / "bundles"
    creds = json.loads((tmp_path / "state" / CREDENTIALS_FILE).read_text())
    assert creds == {"device_id": "dev-1", "token": cloud.tokens["dev-1"], "had_trust": True}
    assert up.status.state == "updated" and up.status.last_error is None

    assert await up.check_once() == "not_modified"
    last_poll = cloud.polls()[-1][2]
    assert last_poll["authorization"] == f"Bearer {cloud.tokens['dev-1']}"
    assert last_poll["if-none-match"] == cloud.etag()
    assert len(cloud.downloads()) == 2 and slot.current.manifest.version == "0.0.2"  # model.onnx and tokenizer.json
    served = slot.current.source
    assert json.loads((served / "manifest.json").read_text()) == cloud.published["0.0.2"].manifest  # the signed one
    assert not [r for r in cloud.requests if r[1].endswith("/bundle")]  # no archive on the update path


async def test_restart_reuses_the_persisted_token_and_does_not_re_enrol(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    assert await make_updater(cloud, slot, tmp_path / "state").check_once() == "updated"
    enrolments = [r for r in cloud.requests if r[:2] == ("POST", "/v1/devices")]
    again = make_updater(cloud, slot, tmp_path / "state", device_id=None)  # id comes from disk too
    assert again.device_id == "dev-1"
    assert await again.check_once() == "up_to_date"  # no ETag after a restart: a 200 for what it already runs
    assert [r for r in cloud.requests if r[:2] == ("POST", "/v1/devices")] == enrolments
    assert len(cloud.downloads()) == 2


async def test_generated_device_id_is_persisted_before_enrolment(cloud: CloudDouble, slot: ModelSlot, tmp_path) -> None:
    first = make_updater(cloud, slot, tmp_path / "state", device_id=None)
    assert first.device_id.startswith("edge-")
    assert make_updater(cloud, slot, tmp_path / "state", device_id=None).device_id == first.device_id


async def test_already_enrolled_without_a_token_is_reported(cloud: CloudDouble, slot: ModelSlot, tmp_path) -> None:
    cloud.tokens["dev-1"] = "someone-elses"
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "enrol" and "already enrolled" in up.status.last_error
    assert slot.current.manifest.version == "0.0.1"


def _bad_signature(c: CloudDouble) -> None:
    c.signing_key = Ed25519PrivateKey.generate()


def _payload_altered_after_signing(c: CloudDouble) -> None:
    def tamper(signed: bytes) -> bytes:
        payload = json.loads(signed)
        payload["manifest"]["files"]["model.onnx"]["sha256"] = "0" * 64
        return json.dumps(payload).encode()

    c.tamper = tamper


def _manifest(c: CloudDouble, change) -> None:
    m = json.loads(json.dumps(c.published["0.0.2"].manifest))
    change(m)
    c.payload_overrides = {"manifest": m}


def _served(c: CloudDouble, name: str, change) -> None:
    c.served_files = {name: change(c.published["0.0.2"].files[name])}


def _expired(c: CloudDouble) -> None:
    now = int(c.now())
    c.payload_overrides = {"issued": now - 7200, "expires": now - 1}


CORRUPTIONS = {
    "bit_flip": ("sha256", lambda c: _served(c, "model.onnx", flip_byte)),
    "truncated": ("sha256", lambda c: _served(c, "model.onnx", lambda b: b[:5000])),
    "longer_than_signed": ("sha256", lambda c: _served(c, "model.onnx", lambda b: b * 2)),
    "tokenizer_replaced": ("sha256", lambda c: _served(c, "tokenizer.json", lambda b: b.replace(b"[CLS]", b"[XLS]"))),
    "bad_signature": ("signature", _bad_signature),
    "payload_altered_after_signing": ("signature", _payload_altered_after_signing),
    "not_an_envelope": ("poll", lambda c: setattr(c, "replay", b'{"version": "other-0.0.2"}')),
    "nested_bomb_envelope": ("poll", lambda c: setattr(c, "replay", b"[" * 5000)),
    "oversized_offer": ("poll", lambda c: setattr(c, "replay", b" " * (MAX_OFFER_BYTES + 1))),
    "offer_names_another_version": ("manifest", lambda c: c.payload_overrides.update(version="other-9.9.9")),
    "manifest_without_tokenizer": ("manifest", lambda c: _manifest(c, lambda m: m["files"].pop("tokenizer.json"))),
    "manifest_names_a_path": (
        "manifest",
        lambda c: _manifest(c, lambda m: m["files"].update({"../evil": m["files"]["model.onnx"]})),
    ),
    "files_over_the_device_budget": (
        "download",
        lambda c: _manifest(c, lambda m: m["files"]["model.onnx"].update(bytes=10**12)),
    ),
    "blob_missing": ("download", lambda c: _manifest(c, lambda m: m["files"]["model.onnx"].update(sha256="ab" * 32))),
    "expired": ("expired", _expired),
    "cloud_error": ("poll", lambda c: setattr(c, "poll_status", 500)),
    # gzip on the wire would be inflated before the cap counts it: refused unread
    "compressed_offer": ("poll", lambda c: c.offer_headers.update({"content-encoding": "gzip"})),
    "compressed_file": ("download", lambda c: c.blob_headers.update({"content-encoding": "gzip"})),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
async def test_a_bad_update_keeps_the_old_model_and_is_reported_then_retried(
    case: str, cloud: CloudDouble, slot: ModelSlot, other_bundle: Path, tmp_path: Path
) -> None:
    stage, corrupt = CORRUPTIONS[case]
    corrupt(cloud)
    metrics = EdgeMetrics()
    old = slot.current
    up = make_updater(cloud, slot, tmp_path / "state", metrics=metrics, max_bundle_bytes=10 * 1024 * 1024)

    assert await up.check_once() == "failed"
    assert slot.current is old  # the very same loaded model keeps serving
    assert (up.status.state, up.status.last_error_stage) == ("failed", stage), up.status.last_error
    assert failures(metrics, stage) == 1.0 and up.status.consecutive_failures == 1
    state = tmp_path / "state"
    assert [d.name for d in (state / "bundles").iterdir()] == []  # nothing half-written is left behind

    # The failure is not silenced by an ETag: once the cloud serves the real thing, the next check takes it.
    cloud.offer("0.0.2")
    assert await up.check_once() == "updated"
    assert slot.current.manifest.version == "0.0.2" and up.status.consecutive_failures == 0


async def test_downgrade_replay_of_a_recorded_signed_offer_is_refused_even_after_a_restart(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "updated"  # 0.0.2 at generation 1
    recorded = cloud.served[-1]  # public bytes: anyone on the path can keep them
    cloud.offer("0.0.3")  # generation 2
    assert await up.check_once() == "updated" and slot.current.manifest.version == "0.0.3"

    cloud.replay = recorded  # a fake cloud replays the older, validly signed, unexpired offer
    metrics = EdgeMetrics()
    up.metrics = metrics
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "rollback" and "generation 1" in up.status.last_error
    assert slot.current.manifest.version == "0.0.3" and failures(metrics, "rollback") == 1.0

    # A restarted process starts from its factory bundle and a fresh updater: the state dir still refuses.
    factory = ModelSlot(load_model(tiny_bundle))
    again = make_updater(cloud, factory, tmp_path / "state")
    assert await again.check_once() == "failed" and again.status.last_error_stage == "rollback"
    assert factory.current.manifest.version == "0.0.1" and again.status.public().generation == 2


async def test_same_generation_with_other_files_is_refused_as_mix_and_match(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    cloud.offer("0.0.2", generation=5)
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "updated"
    cloud.offer("0.0.3", generation=5)  # signed, fresh, but contradicts what generation 5 was
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "mix_and_match" and slot.current.manifest.version == "0.0.2"
    cloud.offer("0.0.3", generation=6)
    assert await up.check_once() == "updated" and slot.current.manifest.version == "0.0.3"


async def test_a_cloud_that_answers_304_forever_is_reported_stale_never_up_to_date(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    clock = [1_800_000_000.0]
    cloud.now = lambda: clock[0]
    metrics = EdgeMetrics()
    up = make_updater(cloud, slot, tmp_path / "state", metrics=metrics, clock=lambda: clock[0], max_metadata_age_s=600)
    assert await up.check_once() == "updated"
    assert await up.check_once() == "not_modified"
    fresh = up.status.public()
    assert (fresh.state, fresh.stale) == ("updated", False)
    assert metrics.registry.get_sample_value("eibert_edge_update_stale") == 0.0

    cloud.freeze = True
    recorded = cloud.served[-1]
    clock[0] += 601
    for _ in range(3):
        assert await up.check_once() == "not_modified"
    frozen = up.status.public()
    assert (frozen.state, frozen.stale, frozen.consecutive_failures) == ("stale", True, 0)
    assert frozen.metadata_age_s == pytest.approx(601, abs=1)
    assert metrics.registry.get_sample_value("eibert_edge_update_stale") == 1.0
    assert metrics.registry.get_sample_value("eibert_edge_update_metadata_age_seconds") == pytest.approx(601, abs=1)

    # Replaying the once-valid offer does not refresh anything: its `issued` is as old as before ...
    cloud.freeze, cloud.replay = False, recorded
    up.etag = None
    assert await up.check_once() == "up_to_date"
    assert up.status.public().state == "stale"
    # ... and once it has expired, it is refused outright.
    clock[0] += 3600
    up.etag = None  # (a 304 would not even show it the offer again)
    assert await up.check_once() == "failed" and up.status.last_error_stage == "expired"
    assert up.status.public().stale and slot.current.manifest.version == "0.0.2"

    # The cloud re-signs (same generation, new `issued`): fresh again.
    cloud.offer("0.0.2", generation=cloud.generation)
    assert await up.check_once() == "up_to_date"
    assert (up.status.public().state, up.status.public().stale) == ("up_to_date", False)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_an_endless_file_stream_stops_at_the_signed_length_in_bounded_memory(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    signed = cloud.published["0.0.2"].files["model.onnx"]
    chunk = b"\0" * (1 << 16)

    async def endless():
        while True:  # a man in the middle that never stops sending
            yield chunk

    cloud.blob_streams = {"model.onnx": endless}
    up = make_updater(cloud, slot, tmp_path / "state")
    rss = _rss_bytes()
    tracemalloc.start()
    try:
        assert await up.check_once() == "failed"
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert up.status.last_error_stage == "sha256" and "longer than its signed" in up.status.last_error
    assert len(signed) < cloud.streamed["model.onnx"] <= len(signed) + 2 * len(chunk)  # stopped at the cap
    assert peak < 50 * 1024 * 1024 and _rss_bytes() - rss < 50 * 1024 * 1024
    assert slot.current.manifest.version == "0.0.1"


async def test_a_drip_fed_file_is_abandoned_at_the_download_deadline(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    async def drip():
        yield b"\0" * 1024
        await asyncio.sleep(3600)  # never another byte, never a closed connection
        yield b"\0"

    cloud.blob_streams = {"model.onnx": drip}
    up = make_updater(cloud, slot, tmp_path / "state", download_timeout_s=0.3)
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "download" and "longer than 0.3 s" in up.status.last_error
    assert slot.current.manifest.version == "0.0.1" and not list((tmp_path / "state" / "bundles").iterdir())


def gnu_longname_bomb(name_bytes: int) -> bytes:
    """A tar.gz whose first header is a GNU long name of `name_bytes` (~1 GB): tarfile would allocate all of it.

    Built without compressing the gigabyte: after a sync flush, deflating another MiB of the same byte gives the
    same output block every time, so that block is repeated; the gzip trailer's CRC-32 is computed honestly.
    """
    info = tarfile.TarInfo("././@LongLink")
    info.type = tarfile.GNUTYPE_LONGNAME
    info.size = name_bytes
    header = info.tobuf(tarfile.GNU_FORMAT)
    piece = b"a" * (1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = z.compress(header) + z.compress(piece) + z.flush(zlib.Z_SYNC_FLUSH)
    steady = z.compress(piece) + z.flush(zlib.Z_SYNC_FLUSH)
    assert steady == z.compress(piece) + z.flush(zlib.Z_SYNC_FLUSH)
    pieces = name_bytes // len(piece)
    crc = zlib.crc32(header)
    for _ in range(pieces):
        crc = zlib.crc32(piece, crc)
    deflated = first + steady * (pieces - 1) + z.flush()
    size = (len(header) + pieces * len(piece)) & 0xFFFFFFFF
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated + struct.pack("<II", crc, size)


def test_the_bomb_is_a_real_one() -> None:
    bomb = gnu_longname_bomb(1 << 30)
    d = zlib.decompressobj(31)
    head = d.decompress(bomb[:4096], 512)
    info = tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    assert (info.type, info.size) == (tarfile.GNUTYPE_LONGNAME, 1 << 30) and len(bomb) < 2 * 1024 * 1024


async def test_a_tar_header_bomb_in_place_of_a_file_is_refused_by_hash_and_never_parsed(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = gnu_longname_bomb(1 << 30)
    assert len(bomb) < 2 * 1024 * 1024  # ~1 MB on the wire, ~1 GB if anything unpacked it

    def never(*args, **kwargs):
        raise AssertionError("an archive parser ran on the update path")

    monkeypatch.setattr(tarfile, "open", never)
    monkeypatch.setattr(tarfile.TarFile, "__init__", never)
    monkeypatch.setattr(gzip.GzipFile, "__init__", never)
    cloud.served_files = {"model.onnx": bomb}
    up = make_updater(cloud, slot, tmp_path / "state")
    rss = _rss_bytes()
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "sha256", up.status.last_error
    assert _rss_bytes() - rss < 50 * 1024 * 1024 and slot.current.manifest.version == "0.0.1"


async def test_rollback_loads_the_kept_bundle_without_downloading_and_disk_stays_bounded(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    up = make_updater(cloud, slot, tmp_path / "state", keep_bundles=2)
    bundles = tmp_path / "state" / "bundles"
    for version in ("0.0.2", "0.0.3"):
        cloud.offer(version)
        assert await up.check_once() == "updated"
    assert len(cloud.downloads()) == 4

    cloud.offer("0.0.2")  # the cloud rolls this device back, at a higher generation
    assert await up.check_once() == "updated"
    assert slot.current.manifest.version == "0.0.2" and slot.previous_version == "tiny-0.0.3"
    assert len(cloud.downloads()) == 4  # loaded from the kept directory, re-verified, not re-downloaded

    cloud.offer("0.0.1")
    assert await up.check_once() == "updated"
    kept = sorted(d.name.rsplit("-", 1)[0] for d in bundles.iterdir())
    assert kept == ["other-0.0.2", "tiny-0.0.1"]  # serving + previous; 0.0.3 pruned (keep_bundles=2)
    assert up.status.history == ["other-0.0.2", "tiny-0.0.3", "other-0.0.2", "tiny-0.0.1"]


async def test_a_kept_bundle_corrupted_on_disk_is_refused_then_downloaded_again(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    up = make_updater(cloud, slot, tmp_path / "state")
    for version in ("0.0.2", "0.0.3"):
        cloud.offer(version)
        assert await up.check_once() == "updated"
    kept = next(d for d in (tmp_path / "state" / "bundles").iterdir() if d.name.startswith("other-0.0.2-"))
    model = kept / "model.onnx"
    model.write_bytes(flip_byte(model.read_bytes()))

    cloud.offer("0.0.2")
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "load" and slot.current.manifest.version == "0.0.3"
    assert await up.check_once() == "updated"
    assert slot.current.manifest.version == "0.0.2" and len(cloud.downloads()) == 6


async def test_background_loop_polls_until_stopped(cloud: CloudDouble, slot: ModelSlot, tmp_path: Path) -> None:
    up = make_updater(cloud, slot, tmp_path / "state", poll_interval_s=0.01)
    up.start()
    try:
        for _ in range(2000):
            if len(cloud.polls()) >= 3:
                break
            await asyncio.sleep(0.005)
    finally:
        await up.stop()
    assert len(cloud.polls()) >= 3 and slot.current.manifest.version == "0.0.2"
    polls = len(cloud.polls())
    await asyncio.sleep(0.05)
    assert len(cloud.polls()) == polls  # stopped means stopped


async def test_an_unexpected_error_is_reported_not_raised(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = make_updater(cloud, slot, tmp_path / "state")

    async def boom(body, client):
        raise KeyError("a bug")

    monkeypatch.setattr(up.keys, "verify", boom)  # the offer check (service/edge/key_trust.py)
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "internal" and "KeyError" in up.status.last_error
    assert slot.current.manifest.version == "0.0.1"


async def test_a_restart_serves_the_accepted_bundle_again_not_the_factory_one(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "updated" and slot.current.release_id == "other-0.0.2"
    cloud.poll_status = 503  # the restart happens while the cloud cannot serve

    factory = ModelSlot(load_model(tiny_bundle))  # what `--bundle` loads at start
    again = make_updater(cloud, factory, tmp_path / "state")
    assert await again.resume() == "other-0.0.2"
    assert (
        factory.current.release_id == "other-0.0.2" and factory.current.source.parent == tmp_path / "state" / "bundles"
    )
    assert not again.status.public().stale and again.status.last_error is None


async def test_a_restart_without_the_accepted_bundle_on_disk_says_stale(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "updated"
    shutil.rmtree(slot.current.source)  # lost, or tampered with: a bundle that no longer hashes is never loaded

    factory = ModelSlot(load_model(tiny_bundle))
    again = make_updater(cloud, factory, tmp_path / "state")
    assert await again.resume() is None and factory.current.release_id == "tiny-0.0.1"
    status = again.status.public()
    assert status.stale and status.state == "failed" and status.last_error_stage == "resume"
    assert "other-0.0.2" in (status.last_error or "")
    assert await again.check_once() == "updated" and factory.current.release_id == "other-0.0.2"
    assert not again.status.public().stale and again.status.last_error is None


async def test_a_restart_on_the_accepted_factory_bundle_changes_nothing(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.offer("0.0.1")  # the cloud offers what the factory bundle already is
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "up_to_date"
    factory = ModelSlot(load_model(tiny_bundle))
    again = make_updater(cloud, factory, tmp_path / "state")
    assert await again.resume() is None and not again.status.public().stale and again.status.last_error is None


async def test_a_304_to_a_poll_without_if_none_match_never_says_up_to_date(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    """Issue 22: a 304 to a node that never saw an offer made it report `up_to_date`."""
    cloud.poll_status = 304
    up = make_updater(cloud, slot, tmp_path / "state")
    for _ in range(2):
        assert await up.check_once() == "failed"
        assert up.status.public().state == "failed" and up.status.last_error_stage == "poll"
        assert "If-None-Match" in (up.status.last_error or "")


def _rolled_back_offer(cloud: CloudDouble) -> tuple[bytes, bytes]:
    """(an older, still unexpired offer of 0.0.1, the current one of 0.0.2 at a higher generation)."""
    cloud.offer("0.0.1")
    old = cloud.signed_body()
    cloud.offer("0.0.2")
    return old, cloud.signed_body()


@pytest.mark.parametrize("loss", ["missing", "unreadable"])
async def test_a_lost_trust_file_is_reported_not_replaced_by_trust_on_first_use(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path, loss: str
) -> None:
    """Issue 22: with trusted_offer.json gone, the node trusted whatever unexpired offer came next (a rollback)."""
    older, _ = _rolled_back_offer(cloud)
    state = tmp_path / "state"
    assert await make_updater(cloud, slot, state).check_once() == "updated"
    assert slot.current.manifest.version == "0.0.2"
    trust_file = state / "trusted_offer.json"
    if loss == "missing":
        trust_file.unlink()
    else:
        trust_file.write_bytes(b"\x00garbage")
    cloud.replay = older  # a man in the middle replays the generation-1 offer to the restarted node
    up = make_updater(cloud, slot, state)
    assert await up.check_once() == "failed"
    public = up.status.public()
    assert (public.state, public.last_error_stage) == ("trust_lost", "trust")
    assert "trusted_offer.json" in (public.last_error or "") and "EIBERT_EDGE_RESET_TRUST" in (public.last_error or "")
    assert slot.current.manifest.version == "0.0.2"  # not rolled back
    assert await up.check_once() == "failed"  # and it stays refused, check after check

    # The documented recovery: one start with reset_trust, once the operator has checked the cloud's offer.
    cloud.replay = None
    up = make_updater(cloud, slot, state, reset_trust=True)
    assert await up.check_once() == "up_to_date" and up.status.trusted.generation == cloud.generation
    assert trust_file.is_file() and up.trust_lost is None


async def test_a_first_start_still_trusts_the_first_offer(cloud: CloudDouble, slot: ModelSlot, tmp_path: Path) -> None:
    """No trust file and no record of ever having trusted one: a new device, trust on first use as designed."""
    up = make_updater(cloud, slot, tmp_path / "state")
    assert up.trust_lost is None and await up.check_once() == "updated"
