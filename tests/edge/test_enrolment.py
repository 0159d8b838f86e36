"""An edge node enrols with the operator-issued enrolment token from its settings (inline or from a file)
against the real cloud app, which refuses the node without one and says what to set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.signing import private_key_to_pem, public_key_to_b64
from service.edge.metrics import EdgeMetrics
from service.edge.slot import ModelSlot, load_model
from service.edge.updater import ModelUpdater
from tests.common.http_bombs import bomb_answer, impostor_cloud
from tests.rss import peak_rss_growth

pytestmark = pytest.mark.anyio
ADMIN = "edge-enrol-admin-token-0123456789"
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'cloud.db'}",
        data_dir=tmp_path / "cloud",
        admin_token=ADMIN,
        signing_key=private_key_to_pem(KEY).decode(),
    )
    with TestClient(create_app(settings)) as client:  # runs the lifespan: the store is open for ASGI calls
        yield client


def issue(cloud: TestClient, max_devices: int = 1) -> str:
    resp = cloud.post(
        "/v1/enrolment-tokens", json={"max_devices": max_devices}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert resp.status_code == 201
    return str(resp.json()["token"])


def cloud_client(cloud: TestClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=cloud.app), base_url="http://cloud")


def updater(cloud: TestClient | None, tiny_bundle: Path, state: Path) -> ModelUpdater:
    return ModelUpdater(
        client=cloud_client(cloud) if cloud is not None else httpx.AsyncClient(),
        slot=ModelSlot(load_model(tiny_bundle)),
        loader=load_model,
        public_key=KEY.public_key(),
        state_dir=state,
        metrics=EdgeMetrics(),
        device_id="edge-1",
    )


async def test_without_an_enrolment_token_the_node_says_what_to_set(cloud, tiny_bundle: Path, tmp_path) -> None:
    up = updater(cloud, tiny_bundle, tmp_path / "s")
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "enrol" and "EIBERT_EDGE_ENROLMENT_TOKEN" in (up.status.last_error or "")
    assert up.token is None
    assert up.status.state == "enrolment_refused" and up.status.enrolment_refused == up.status.last_error


async def test_a_wrong_enrolment_token_is_a_refusal_until_a_good_one_enrols(cloud, tiny_bundle, tmp_path) -> None:
    up = updater(cloud, tiny_bundle, tmp_path / "s")
    up.enrolment_token = "not-a-token-the-operator-issued"
    assert await up.check_once() == "failed" and up.status.state == "enrolment_refused"
    assert "HTTP 401" in (up.status.enrolment_refused or "")
    up.enrolment_token = issue(cloud)
    assert await up.check_once() == "nothing_offered" and up.status.enrolment_refused is None


async def test_nothing_released_yet_is_not_a_failure(cloud, tiny_bundle: Path, tmp_path) -> None:
    up = updater(cloud, tiny_bundle, tmp_path / "s")
    up.enrolment_token = issue(cloud)
    assert await up.check_once() == "nothing_offered"  # enrols, then the poll finds nothing released yet
    status = up.status.public()
    assert up.token is not None and status.state == "nothing_offered" and status.consecutive_failures == 0
    assert status.last_error is None and status.last_error_stage is None
    samples = [s for m in up.metrics.registry.collect() for s in m.samples]
    assert not [s for s in samples if s.name == "eibert_edge_model_load_failures_total"]
    assert [s.labels for s in samples if s.name == "eibert_edge_update_checks_total"] == [
        {"outcome": "nothing_offered"}
    ]


def test_settings_read_the_token_inline_or_from_a_file(make_settings, tiny_bundle: Path, tmp_path: Path) -> None:
    key = public_key_to_b64(KEY.public_key())
    path = tmp_path / "enrolment-token"
    path.write_text("from-the-file\n")
    base = {"cloud": "http://cloud:8000", "cloud_public_key": key}
    assert make_settings(tiny_bundle, **base).enrolment_credential() is None
    assert make_settings(tiny_bundle, enrolment_token_file=path, **base).enrolment_credential() == "from-the-file"
    inline = make_settings(tiny_bundle, enrolment_token="inline", enrolment_token_file=path, **base)
    assert inline.enrolment_credential() == "inline"


def test_the_app_hands_its_token_to_the_updater(cloud, make_settings, tiny_bundle: Path) -> None:
    from service.edge.app import create_app as create_edge

    token = issue(cloud)
    settings = make_settings(
        tiny_bundle, cloud="http://cloud", cloud_public_key=public_key_to_b64(KEY.public_key()),
        enrolment_token=token, telemetry=False, poll_interval_s=3600,
    )  # fmt: skip
    with TestClient(create_edge(settings, cloud_client=cloud_client(cloud))) as edge:
        assert edge.app.state.edge.updater.enrolment_token == token


async def test_the_node_renews_its_token_before_it_expires_and_stops_when_revoked(
    cloud, tiny_bundle: Path, tmp_path
) -> None:
    """Issue 22: device tokens never expired, so nothing renewed them. Past half its token's life the node swaps
    it for a new one (persisted; the old one is refused by the cloud at once); once the operator revokes the
    node, renewal is refused and the check fails at `enrol`, saying why."""
    import json
    import time

    now = [time.time()]
    up = updater(cloud, tiny_bundle, tmp_path / "s")
    up.clock = lambda: now[0]
    up.enrolment_token = issue(cloud)
    await up.check_once()
    first = up.token
    assert first is not None and up.token_expires is not None
    await up.check_once()  # early in its life: kept
    assert up.token == first
    now[0] += (up.token_expires - now[0]) / 2 + 1
    await up.check_once()
    assert up.token != first and up.status.state == "nothing_offered"  # renewed; nothing released is no failure
    assert json.loads((tmp_path / "s" / "device.json").read_text())["token"] == up.token
    model = "/v1/devices/edge-1/model"
    assert cloud.get(model, headers={"Authorization": f"Bearer {first}"}).status_code == 401
    assert cloud.get(model, headers={"Authorization": f"Bearer {up.token}"}).status_code == 404  # valid: none yet
    restarted = updater(cloud, tiny_bundle, tmp_path / "s")  # the expiry survives a restart with the token
    assert (restarted.token, restarted.token_expires) == (up.token, up.token_expires)
    assert cloud.delete("/v1/devices/edge-1", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 204
    now[0] = up.token_expires - 1
    assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "enrol" and "revoked" in (up.status.last_error or "")


async def test_an_impostor_clouds_gzip_bomb_enrolment_answer_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    """Issue 22: 261 KB of gzip inflating to 256 MiB as the answer to POST /v1/devices grew the node by 685 MB."""
    with impostor_cloud(bomb_answer()) as impostor:
        up = updater(None, tiny_bundle, tmp_path / "s")
        up.client = httpx.AsyncClient(base_url=impostor.url)
        up.enrolment_token = "enrolment-token"
        with peak_rss_growth() as growth:
            assert await up.check_once() == "failed"
        await up.client.aclose()
    assert growth.mib < 32
    assert up.status.last_error_stage == "enrol" and "gzip-encoded" in (up.status.last_error or "")
    assert up.token is None
