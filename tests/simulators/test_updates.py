"""One update protocol for real nodes and simulated devices: both follow a real cloud's rollout and rollback
(over real sockets), and both refuse the same hostile answers, replays included."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from service.common.signing import public_key_from_b64
from service.edge.metrics import EdgeMetrics
from service.edge.slot import ModelSlot, load_model
from service.edge.updater import ModelUpdater
from simulators.runtime import ModelLibrary
from simulators.updates import DeviceUpdater
from tests.edge.cloud_double import CloudDouble
from tests.edge.test_updater import CORRUPTIONS
from tests.simulators.conftest import VARIANT_VERSION, Cloud


class ReplayingTransport(httpx.AsyncBaseTransport):
    """A man in the middle: passes everything through, records each offer, and can answer polls with an old one."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.offers: list[bytes] = []
        self.replay: bytes | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_poll = request.url.path.endswith("/model")
        if is_poll and self.replay is not None:
            return httpx.Response(200, content=self.replay, headers={"content-type": "application/json"})
        response = await self.inner.handle_async_request(request)
        if is_poll and response.status_code == 200:
            body = await response.aread()
            self.offers.append(body)
            return httpx.Response(200, content=body, headers=response.headers, request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_rollout_rollback_and_replays_against_the_real_cloud(
    cloud: Cloud, tiny_bundle: Path, variant_bundle: Path, tmp_path: Path
) -> None:
    first, second = cloud.publish(tiny_bundle), cloud.publish(variant_bundle)
    key = public_key_from_b64(cloud.public_key)
    token = cloud.enrolment_token(max_devices=2)

    async def scenario() -> None:
        mitm = ReplayingTransport()
        client = httpx.AsyncClient(transport=mitm, base_url=cloud.url, timeout=30)
        slot = ModelSlot(load_model(tiny_bundle))
        node = ModelUpdater(
            client=client, slot=slot, loader=load_model, public_key=key, state_dir=tmp_path / "edge",
            metrics=EdgeMetrics(), device_id="edge-e2e", enrolment_token=token,
        )  # fmt: skip
        models = ModelLibrary(tmp_path / "models")
        sim = DeviceUpdater(
            device_id="sim-e2e", client=client, public_key=key, models=models,
            model=models.load_factory(tiny_bundle), enrolment_token=token,
        )  # fmt: skip

        async def both() -> list[tuple[str, str, str | None]]:
            outcome = await node.check_once()
            result = await sim.check()
            stage = node.status.last_error_stage if outcome == "failed" else None
            return [(outcome, slot.current.manifest.release_id, stage), (result.outcome, result.serving, result.stage)]

        await asyncio.to_thread(cloud.rollout, first, 100)
        assert await both() == [("up_to_date", first, None)] * 2
        old_offer = mitm.offers[-1]
        await asyncio.to_thread(cloud.rollout, second, 100)
        assert await both() == [("updated", second, None)] * 2
        new_offer = mitm.offers[-1]

        mitm.replay = old_offer  # downgrade: the public, signed offer of the older version, replayed
        node.etag = sim.etag = None
        assert await both() == [("failed", second, "rollback"), ("failed", second, "rollback")]
        mitm.replay = None

        await asyncio.to_thread(cloud.admin, "POST", "/v1/rollback")  # a real rollback: a new generation
        assert await both() == [("updated", first, None)] * 2

        mitm.replay = new_offer  # and the offer it superseded cannot bring the newer version back either
        node.etag = sim.etag = None
        assert await both() == [("failed", first, "rollback"), ("failed", first, "rollback")]
        await client.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_simulated_device_refuses_what_a_node_refuses(
    case: str, tiny_bundle: Path, variant_bundle: Path, tmp_path: Path
) -> None:
    stage, corrupt = CORRUPTIONS[case]
    double = CloudDouble()
    double.publish(tiny_bundle)
    double.publish(variant_bundle)
    double.offer(VARIANT_VERSION)
    corrupt(double)

    async def scenario() -> None:
        models = ModelLibrary(tmp_path / "models")
        device = DeviceUpdater(
            device_id="sim-1", client=double.client(), public_key=double.key.public_key(), models=models,
            model=models.load_factory(tiny_bundle), max_bundle_bytes=10 * 1024 * 1024,
        )  # fmt: skip
        factory = device.model
        result = await device.check()
        assert (result.outcome, result.stage) == ("failed", stage), result.error
        assert device.model is factory and result.serving == factory.version
        double.offer(VARIANT_VERSION)
        assert (await device.check()).outcome == "updated" and device.model.version.endswith(VARIANT_VERSION)

    asyncio.run(scenario())
