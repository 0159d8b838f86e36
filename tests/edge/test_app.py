"""The app as a whole: lifespan, the telemetry hook, update failures made visible, startup refusals."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from service.common.errors import BundleError
from service.edge.app import create_app
from service.edge.hooks import EdgeEvent, TelemetryHook
from tests.edge.cloud_double import CloudDouble
from tests.edge.running_app import first_check_done, serve

pytestmark = pytest.mark.anyio


class RecordingTelemetry:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[EdgeEvent] = []
        self.calls: list[str] = []
        self.fail = fail

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")

    def observe(self, event: EdgeEvent) -> None:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("telemetry broke")


async def test_telemetry_hook_sees_counts_never_text(tiny_bundle: Path, make_settings) -> None:
    hook = RecordingTelemetry()
    assert isinstance(hook, TelemetryHook)
    secret = "private behaviour text 7f3a"
    async with serve(create_app(make_settings(tiny_bundle), telemetry=hook)) as client:
        assert (await client.post("/v1/encode", json={"texts": [secret, "b"]})).status_code == 200
        body = {"behaviors": [{"text": secret, "ts": 1.0}], "candidates": [{"id": "c-7f3a", "text": "x"}], "top_k": 1}
        assert (await client.post("/v1/rank", json=body)).status_code == 200
    assert hook.calls == ["start", "stop"]
    assert [(e.route, e.model_version, e.texts) for e in hook.events] == [
        ("/v1/encode", "tiny-0.0.1", 2),
        ("/v1/rank", "tiny-0.0.1", 2),
    ]
    assert (hook.events[1].behaviors, hook.events[1].candidates, hook.events[1].top_k) == (1, 1, 1)
    assert all("7f3a" not in repr(e) for e in hook.events)


async def test_a_failing_telemetry_hook_never_fails_a_request(tiny_bundle: Path, make_settings) -> None:
    async with serve(create_app(make_settings(tiny_bundle), telemetry=RecordingTelemetry(fail=True))) as client:
        assert (await client.post("/v1/encode", json={"texts": ["a"]})).status_code == 200


def offering(bundle: Path) -> CloudDouble:
    """A cloud double that publishes `bundle` and offers it (version 0.0.2)."""
    cloud = CloudDouble()
    cloud.publish(bundle)
    cloud.offer("0.0.2")
    return cloud


async def test_failed_update_is_visible_in_model_and_metrics_while_old_model_serves(
    tiny_bundle: Path, other_bundle: Path, make_settings
) -> None:
    cloud = offering(other_bundle)
    cloud.served_files = {"model.onnx": cloud.published["0.0.2"].files["model.onnx"][:100]}  # truncated download
    settings = make_settings(
        tiny_bundle, cloud="http://cloud.test", cloud_public_key=cloud.public_key_b64, poll_interval_s=3600
    )
    app = create_app(settings, cloud_client=cloud.client())
    async with serve(app) as client:
        updater = app.state.edge.updater
        await first_check_done(updater)  # the background loop's own first check (it fails the same way)
        assert await updater.check_once() == "failed"
        info = (await client.get("/v1/model")).json()
        assert info["version"] == "tiny-0.0.1"
        assert info["update"]["state"] == "failed" and info["update"]["last_error_stage"] == "sha256"
        assert info["update"]["offered_version"] == "other-0.0.2" and info["update"]["consecutive_failures"] >= 1
        metrics = (await client.get("/metrics")).text
        assert 'eibert_edge_model_load_failures_total{stage="sha256"}' in metrics
        assert (await client.post("/v1/encode", json={"texts": ["a"]})).json()["model_version"] == "tiny-0.0.1"

        cloud.offer("0.0.2")  # the cloud fixes its storage
        assert await updater.check_once() == "updated"
        info = (await client.get("/v1/model")).json()
        want = ("other-0.0.2", "tiny-0.0.1", "updated")
        assert (info["version"], info["previous_version"], info["update"]["state"]) == want
        assert info["update"]["last_error"] is None and info["update"]["last_error_stage"] is None  # it is over
        metrics = (await client.get("/metrics")).text
        assert 'model_version="other-0.0.2"' in metrics and 'model_version="tiny-0.0.1"' not in metrics
        r = (await client.post("/v1/encode", json={"texts": ["a"]})).json()
        assert (r["model_version"], r["dim"], len(r["embeddings"][0])) == ("other-0.0.2", 16, 16)


async def test_a_frozen_cloud_makes_the_node_say_stale_in_model_readyz_and_metrics(
    tiny_bundle: Path, other_bundle: Path, make_settings
) -> None:
    cloud = offering(other_bundle)
    settings = make_settings(
        tiny_bundle, cloud="http://cloud.test", cloud_public_key=cloud.public_key_b64, poll_interval_s=3600,
        max_metadata_age_s=600,
    )  # fmt: skip
    app = create_app(settings, cloud_client=cloud.client())
    async with serve(app) as client:
        updater = app.state.edge.updater
        await first_check_done(updater)
        assert updater.status.state == "updated"
        ready = (await client.get("/readyz")).json()
        assert ready["update_stale"] is False and ready["update_metadata_age_s"] < 60
        assert "eibert_edge_update_stale 0.0" in (await client.get("/metrics")).text

        cloud.freeze = True  # every poll from now on: 304, as if nothing ever changed
        now = updater.clock()
        updater.clock = lambda: now + 601
        assert await updater.check_once() == "not_modified"
        update = (await client.get("/v1/model")).json()["update"]
        assert (update["state"], update["stale"], update["last_error"]) == ("stale", True, None)
        assert update["metadata_age_s"] > 600 and update["generation"] == 1
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["update_stale"] is True  # serving, but say so
        metrics = (await client.get("/metrics")).text
        age = re.search(r"^eibert_edge_update_metadata_age_seconds ([0-9.e+]+)$", metrics, re.M)
        assert "eibert_edge_update_stale 1.0" in metrics and age is not None and float(age.group(1)) > 600


async def test_a_corrupt_startup_bundle_refuses_to_start(tiny_bundle: Path, tmp_path: Path, make_settings) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[100] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        async with serve(create_app(make_settings(bad))):
            pass


async def test_batching_is_opt_in_and_both_ways_serve(tiny_bundle: Path, make_settings) -> None:
    app = create_app(make_settings(tiny_bundle))  # the default: each request encoded on its own (issue 14)
    async with serve(app) as client:
        r = await client.post("/v1/encode", json={"texts": ["a", "b"]})
        assert r.status_code == 200 and len(r.json()["embeddings"]) == 2
        assert app.state.edge.batcher is None
    app = create_app(make_settings(tiny_bundle, batching=True, inline_budget_ms=0.0))  # every batch via the batcher
    async with serve(app) as client:
        assert app.state.edge.batcher is not None and app.state.edge.batcher.running
        r = await client.post("/v1/embeddings", json={"model": "tiny", "input": ["a", "b"]})
        assert r.status_code == 200 and len(r.json()["data"]) == 2


def cloud_settings(cloud: CloudDouble) -> dict:
    return {"cloud": "http://cloud.test", "cloud_public_key": cloud.public_key_b64, "poll_interval_s": 3600}


async def test_a_restarted_node_serves_the_bundle_it_accepted_and_a_refused_one_is_not_ready(
    tiny_bundle: Path, other_bundle: Path, make_settings
) -> None:
    cloud = offering(other_bundle)
    settings = make_settings(tiny_bundle, **cloud_settings(cloud), device_id="edge-a")
    app = create_app(settings, cloud_client=cloud.client())
    async with serve(app) as client:
        await first_check_done(app.state.edge.updater)
        assert (await client.get("/v1/model")).json()["version"] == "other-0.0.2"

    cloud.poll_status = 503  # the node restarts while the cloud is down: --bundle is still tiny-0.0.1
    again = create_app(settings, cloud_client=cloud.client())
    async with serve(again) as client:
        info = (await client.get("/v1/model")).json()
        assert info["version"] == "other-0.0.2" and not info["update"]["stale"]  # verified again, from its state dir
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model_version"] == "other-0.0.2"

    (settings.state_dir / "device.json").unlink()  # its device token is lost: the cloud refuses a second enrolment
    cloud.poll_status = None
    refused = create_app(settings, cloud_client=cloud.client())
    async with serve(refused) as client:
        await first_check_done(refused.state.edge.updater)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"] == "enrolment_refused", ready.text
        assert "already enrolled" in ready.json()["message"]
        assert (await client.post("/v1/encode", json={"texts": ["a"]})).status_code == 200  # it still serves


async def test_a_lost_trust_file_shows_in_model_and_readyz(
    tiny_bundle: Path, other_bundle: Path, make_settings
) -> None:
    """Issue 22: a node that had trusted an offer and lost trusted_offer.json says so, in /v1/model and /readyz."""
    cloud = offering(other_bundle)
    settings = make_settings(tiny_bundle, cloud="http://cloud.test", cloud_public_key=cloud.public_key_b64)
    first = create_app(settings, cloud_client=cloud.client())
    async with serve(first):
        await first_check_done(first.state.edge.updater)
        assert first.state.edge.updater.status.state == "updated"
    (settings.state_dir / "trusted_offer.json").unlink()  # lost between two runs
    app = create_app(settings, cloud_client=cloud.client())
    async with serve(app) as client:
        await first_check_done(app.state.edge.updater)
        update = (await client.get("/v1/model")).json()["update"]
        assert (update["state"], update["last_error_stage"]) == ("trust_lost", "trust")
        ready = (await client.get("/readyz")).json()
        assert ready["update_state"] == "trust_lost" and "trusted_offer.json is missing" in ready["update_error"]
