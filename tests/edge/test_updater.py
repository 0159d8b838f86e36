"""Model updates against a test double of the cloud's device API: the happy path, then every way a download
or a server can be wrong, each of which must leave the old model serving and say what failed."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.common.archive import pack_bundle
from service.edge.metrics import EdgeMetrics
from service.edge.slot import ModelSlot, load_model
from service.edge.updater import CREDENTIALS_FILE, ModelUpdater
from tests.edge.cloud_double import CloudDouble, flip_byte, repack

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
    assert slot.current is not old and slot.current.version == "0.0.2" and slot.current.dim == 16
    assert slot.previous_version == "0.0.1"
    assert slot.current.source.parent == tmp_path / "state" / "bundles"
    creds = json.loads((tmp_path / "state" / CREDENTIALS_FILE).read_text())
    assert creds == {"device_id": "dev-1", "token": cloud.tokens["dev-1"]}
    assert up.status.state == "updated" and up.status.last_error is None

    assert await up.check_once() == "not_modified"
    last_poll = cloud.polls()[-1][2]
    assert last_poll["authorization"] == f"Bearer {cloud.tokens['dev-1']}"
    assert last_poll["if-none-match"] == cloud.etag()
    assert len(cloud.downloads()) == 1 and slot.current.version == "0.0.2"
    assert not list((tmp_path / "state" / "tmp").iterdir())  # the temporary archive is gone


async def test_restart_reuses_the_persisted_token_and_does_not_re_enrol(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path
) -> None:
    assert await make_updater(cloud, slot, tmp_path / "state").check_once() == "updated"
    enrolments = [r for r in cloud.requests if r[:2] == ("POST", "/v1/devices")]
    again = make_updater(cloud, slot, tmp_path / "state", device_id=None)  # id comes from disk too
    assert again.device_id == "dev-1"
    assert await again.check_once() == "up_to_date"  # no ETag after a restart: a 200 for what it already runs
    assert [r for r in cloud.requests if r[:2] == ("POST", "/v1/devices")] == enrolments
    assert len(cloud.downloads()) == 1


async def test_generated_device_id_is_persisted_before_enrolment(cloud: CloudDouble, slot: ModelSlot, tmp_path) -> None:
    first = make_updater(cloud, slot, tmp_path / "state", device_id=None)
    assert first.device_id.startswith("edge-")
    assert make_updater(cloud, slot, tmp_path / "state", device_id=None).device_id == first.device_id


async def test_already_enrolled_without_a_token_is_reported(cloud: CloudDouble, slot: ModelSlot, tmp_path) -> None:
    cloud.tokens["dev-1"] = "someone-elses"
    up = make_updater(cloud, slot, tmp_path / "state")
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "enrol" and "already enrolled" in up.status.last_error
    assert slot.current.version == "0.0.1"


def _bad_signature(c: CloudDouble) -> None:
    c.signing_key = Ed25519PrivateKey.generate()


def _tampered_manifest(c: CloudDouble) -> None:
    m = json.loads(json.dumps(c.published["0.0.2"].manifest))
    m["files"]["model.onnx"]["sha256"] = "0" * 64
    c.offer_overrides = {"manifest": m}


def _archive_of_another_bundle(c: CloudDouble, tiny: Path, other: Path) -> None:
    c.publish(other, archive=pack_bundle(tiny))  # signed manifest of 0.0.2, archive of 0.0.1


def _model_replaced_inside_archive(c: CloudDouble, tiny: Path, other: Path) -> None:
    files = {n: (other / n).read_bytes() for n in ("manifest.json", "tokenizer.json")}
    files["model.onnx"] = flip_byte((other / "model.onnx").read_bytes())
    c.publish(other, archive=repack(files))


def _hostile_archive(c: CloudDouble, tiny: Path, other: Path) -> None:
    link = tarfile.TarInfo("extra")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    files = {n: (other / n).read_bytes() for n in ("manifest.json", "tokenizer.json", "model.onnx")}
    c.publish(other, archive=repack(files, extra=[link]))


CORRUPTIONS = {
    "bit_flip": ("sha256", lambda c, t, o: setattr(c, "served_archive", flip_byte(c.published["0.0.2"].archive))),
    "truncated": ("sha256", lambda c, t, o: setattr(c, "served_archive", c.published["0.0.2"].archive[:5000])),
    "longer_than_announced": ("sha256", lambda c, t, o: setattr(c, "served_archive", c.published["0.0.2"].archive * 2)),
    "wrong_sha": ("sha256", lambda c, t, o: c.offer_overrides.update(bundle_sha256="0" * 64)),
    "bad_signature": ("signature", lambda c, t, o: _bad_signature(c)),
    "tampered_manifest": ("signature", lambda c, t, o: _tampered_manifest(c)),
    "archive_of_another_bundle": ("manifest", _archive_of_another_bundle),
    "model_replaced_inside_archive": ("load", _model_replaced_inside_archive),
    "hostile_archive": ("unpack", _hostile_archive),
    "oversized": ("download", lambda c, t, o: c.offer_overrides.update(bundle_bytes=10**12)),
    "foreign_bundle_url": ("download", lambda c, t, o: c.offer_overrides.update(bundle_url="http://evil.test/b")),
    "cloud_error": ("poll", lambda c, t, o: setattr(c, "poll_status", 500)),
    "malformed_offer": ("poll", lambda c, t, o: c.offer_overrides.update(bundle_sha256="not-hex")),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
async def test_a_bad_update_keeps_the_old_model_and_is_reported_then_retried(
    case: str, cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    stage, corrupt = CORRUPTIONS[case]
    corrupt(cloud, tiny_bundle, other_bundle)
    metrics = EdgeMetrics()
    old = slot.current
    up = make_updater(cloud, slot, tmp_path / "state", metrics=metrics, max_bundle_bytes=10 * 1024 * 1024)

    assert await up.check_once() == "failed"
    assert slot.current is old  # the very same loaded model keeps serving
    assert (up.status.state, up.status.last_error_stage) == ("failed", stage), up.status.last_error
    assert failures(metrics, stage) == 1.0 and up.status.consecutive_failures == 1
    state = tmp_path / "state"
    assert [d.name for d in (state / "bundles").iterdir()] == []  # nothing half-unpacked is left behind
    assert not (state / "tmp").exists() or not list((state / "tmp").iterdir())

    # The failure is not silenced by an ETag: once the cloud serves the real thing, the next check takes it.
    cloud.publish(other_bundle)
    cloud.offer("0.0.2")
    assert await up.check_once() == "updated"
    assert slot.current.version == "0.0.2" and up.status.consecutive_failures == 0


async def test_rollback_loads_the_kept_bundle_without_downloading_and_disk_stays_bounded(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    up = make_updater(cloud, slot, tmp_path / "state", keep_bundles=2)
    bundles = tmp_path / "state" / "bundles"
    for version in ("0.0.2", "0.0.3"):
        cloud.offer(version)
        assert await up.check_once() == "updated"
    assert len(cloud.downloads()) == 2

    cloud.offer("0.0.2")  # the cloud rolls this device back
    assert await up.check_once() == "updated"
    assert slot.current.version == "0.0.2" and slot.previous_version == "0.0.3"
    assert len(cloud.downloads()) == 2  # loaded from the kept directory, re-verified, not re-downloaded

    cloud.offer("0.0.1")
    assert await up.check_once() == "updated"
    kept = sorted(d.name.split("-")[0] for d in bundles.iterdir())
    assert kept == ["0.0.1", "0.0.2"]  # serving + previous; 0.0.3 pruned (keep_bundles=2)
    assert up.status.history == ["0.0.2", "0.0.3", "0.0.2", "0.0.1"]


async def test_a_kept_bundle_corrupted_on_disk_is_refused_then_downloaded_again(
    cloud: CloudDouble, slot: ModelSlot, tiny_bundle: Path, tmp_path: Path
) -> None:
    cloud.publish(relabel(tiny_bundle, tmp_path / "third", "0.0.3"))
    up = make_updater(cloud, slot, tmp_path / "state")
    for version in ("0.0.2", "0.0.3"):
        cloud.offer(version)
        assert await up.check_once() == "updated"
    kept = next(d for d in (tmp_path / "state" / "bundles").iterdir() if d.name.startswith("0.0.2-"))
    model = kept / "model.onnx"
    model.write_bytes(flip_byte(model.read_bytes()))

    cloud.offer("0.0.2")
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "load" and slot.current.version == "0.0.3"
    assert await up.check_once() == "updated"
    assert slot.current.version == "0.0.2" and len(cloud.downloads()) == 3


async def test_background_loop_polls_until_stopped(cloud: CloudDouble, slot: ModelSlot, tmp_path: Path) -> None:
    import asyncio

    up = make_updater(cloud, slot, tmp_path / "state", poll_interval_s=0.01)
    up.start()
    try:
        for _ in range(2000):
            if len(cloud.polls()) >= 3:
                break
            await asyncio.sleep(0.005)
    finally:
        await up.stop()
    assert len(cloud.polls()) >= 3 and slot.current.version == "0.0.2"
    polls = len(cloud.polls())
    await asyncio.sleep(0.05)
    assert len(cloud.polls()) == polls  # stopped means stopped


async def test_an_unexpected_error_is_reported_not_raised(
    cloud: CloudDouble, slot: ModelSlot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    up = make_updater(cloud, slot, tmp_path / "state")

    def boom(offer):
        raise KeyError("a bug")

    monkeypatch.setattr(up, "_verified_manifest", boom)
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "internal" and "KeyError" in up.status.last_error
    assert slot.current.version == "0.0.1"
