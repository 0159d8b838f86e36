"""The device telemetry client against the real cloud app (SQLite store): privacy of what leaves the device,
the daily budget, the durable outbox and exactly-once delivery."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.archive import pack_bundle
from service.common.ldp import GENRES, LATENCY_BUCKETS, latency_bucket_of
from service.common.signing import private_key_to_pem
from service.edge.hooks import EdgeEvent, TelemetryHook
from service.edge.telemetry import LatencyTelemetry, TelemetryClient
from tests.common.http_bombs import bomb_answer, impostor_cloud
from tests.rss import peak_rss_growth

ADMIN = "edge-test-admin-token-0123456789"
DAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def cloud(tmp_path: Path, tiny_bundle: Path) -> Iterator[tuple[TestClient, str]]:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'cloud.db'}",
        data_dir=tmp_path / "cloud",
        admin_token=ADMIN,
        signing_key=private_key_to_pem(Ed25519PrivateKey.generate()).decode(),
        max_model_bytes=10_000_000,
        k_min=1,
    )
    with TestClient(create_app(settings)) as client:
        resp = client.post(
            "/v1/models",
            content=pack_bundle(tiny_bundle),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/gzip"},
        )
        assert resp.status_code == 201
        version = resp.json()["version"]
        rollout = {"version": version, "percent": 100}
        assert client.put("/v1/rollout", json=rollout, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
        yield client, version


class Wire:
    """An httpx transport that forwards to the real cloud app and keeps every request it carried."""

    def __init__(self, app_client: TestClient, *, lose_responses: int = 0, down: bool = False) -> None:
        self.app_client = app_client
        self.requests: list[httpx.Request] = []
        self.lose_responses = lose_responses
        self.down = down

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("cloud is down", request=request)
        resp = self.app_client.request(
            request.method,
            str(request.url.copy_with(scheme="http", host="testserver", port=None)),
            content=request.content,
            headers=dict(request.headers),
        )
        if self.lose_responses > 0:  # the cloud processed it, but the answer never reaches the device
            self.lose_responses -= 1
            raise httpx.ReadError("connection reset while reading the response", request=request)
        return httpx.Response(resp.status_code, headers=dict(resp.headers), content=resp.content)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle), base_url="http://cloud.invalid")


def enrol(cloud_client: TestClient, device_id: str) -> str:
    """A device token, enrolled with an operator-issued enrolment token (as every real client must), after one
    poll for its model: a device reports only under a version the cloud offered it."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    credential = cloud_client.post("/v1/enrolment-tokens", json={"max_devices": 1}, headers=admin).json()["token"]
    resp = cloud_client.post(
        "/v1/devices", json={"device_id": device_id}, headers={"Authorization": f"Bearer {credential}"}
    )
    assert resp.status_code == 201, resp.text
    token = str(resp.json()["token"])
    poll = cloud_client.get(f"/v1/devices/{device_id}/model", headers={"Authorization": f"Bearer {token}"})
    assert poll.status_code == 200, poll.text
    return token


ONE_EACH = (("top_genre", "War"), ("latency_bucket", "<10ms"), ("top_item_clicked", True))  # one report per group


def device(cloud_client: TestClient, wire: Wire, outbox: Path, device_id: str = "phone-1", **kw) -> TelemetryClient:
    token = enrol(cloud_client, device_id)
    return TelemetryClient(outbox=outbox, cloud=wire.client(), token=token, today=lambda: DAY, **kw)


def cloud_reports(cloud_client: TestClient) -> int:
    """Reports the cloud has counted (its store's aggregates: a day's release waits until the day closes)."""
    store = cloud_client.app.state.ctx.store
    return sum(c.n for a in cloud_client.portal.call(store.fleet) for c in a.cells)


def test_only_ldp_encoded_payloads_leave_the_device(cloud, tmp_path: Path) -> None:
    app_client, version = cloud
    wire = Wire(app_client)
    behaviours = [
        "watched Blade Runner 2049 at 23:10",
        "searched for romantic comedies set in Paris",
        "rated The Godfather 5 stars",
    ]
    genre_of = {behaviours[0]: "Sci-Fi", behaviours[1]: "Romance", behaviours[2]: "Crime"}
    with device(app_client, wire, tmp_path / "outbox.db") as tc:
        # the device derives metric values from behaviour locally; only those values reach the client
        top = max(genre_of.values(), key=list(genre_of.values()).count)
        assert tc.record("top_genre", top, model_version=version)
        assert tc.record("latency_bucket", latency_bucket_of(12.7), model_version=version)
        assert tc.record("top_item_clicked", True, model_version=version)
        assert tc.flush().accepted == 3
    assert wire.requests
    categories = [*GENRES, *LATENCY_BUCKETS, "clicked", "not_clicked", "true", "false"]
    forbidden = [*behaviours, "Blade", "Paris", "Godfather", *(f'"{c}"' for c in categories), "12.7"]
    envelope = {"report_id", "metric", "mechanism", "epsilon", "model_version", "day", "payload"}
    for request in wire.requests:
        text = request.content.decode()
        for word in forbidden:
            assert word not in text, f"{word!r} left the device"
        for report in json.loads(text)["reports"]:
            assert set(report) == envelope
            assert set(report["payload"]) in ({"bit"}, {"bits"}, {"seed", "value"})
        assert request.url.path == "/v1/telemetry"


def test_never_spends_more_than_the_daily_budget(cloud, tmp_path: Path) -> None:
    app_client, version = cloud
    today = [DAY]
    token = enrol(app_client, "phone-1")
    tc = TelemetryClient(outbox=tmp_path / "o.db", cloud=Wire(app_client).client(), token=token, today=lambda: today[0])
    made = [tc.record("top_genre", "War", model_version=version, epsilon=0.3) for _ in range(5)]
    assert [m is not None for m in made] == [True, True, True, False, False]  # 0.9 spent, 0.3 more would be 1.2
    assert tc.record("top_item_clicked", False, model_version=version, epsilon=0.1) is not None
    assert tc.spent() == pytest.approx(1.0)
    assert tc.record("top_item_clicked", False, model_version=version, epsilon=0.01) is None
    today[0] = DAY + dt.timedelta(days=1)
    assert tc.spent() == 0.0 and tc.record("top_genre", "War", model_version=version) is not None
    tc.close()


def test_outbox_survives_a_restart_and_delivers_once(cloud, tmp_path: Path) -> None:
    app_client, version = cloud
    wire = Wire(app_client, down=True)
    outbox = tmp_path / "outbox.db"
    tc = device(app_client, wire, outbox)
    ids = [tc.record(m, v, model_version=version) for m, v in ONE_EACH]
    result = tc.flush()
    assert result.error and result.remaining == 3
    token = tc.token
    tc.close()  # the app restarts

    wire.down = False
    tc = TelemetryClient(outbox=outbox, cloud=wire.client(), token=token, today=lambda: DAY)
    assert tc.pending() == 3 and tc.spent() == pytest.approx(1.0)  # spend survives too: no re-spending
    assert tc.flush().accepted == 3
    assert tc.pending() == 0 and cloud_reports(app_client) == 3
    sent_ids = [r["report_id"] for req in wire.requests[1:] for r in json.loads(req.content)["reports"]]
    assert sorted(sent_ids) == sorted(ids)
    tc.close()


def test_a_lost_acknowledgement_is_retried_and_counted_once(cloud, tmp_path: Path) -> None:
    app_client, version = cloud
    wire = Wire(app_client, lose_responses=1)
    tc = device(app_client, wire, tmp_path / "outbox.db")
    for m, v in ONE_EACH[:2]:
        tc.record(m, v, model_version=version)
    first = tc.flush()
    assert first.error and first.remaining == 2  # the cloud counted them, but the device does not know
    assert cloud_reports(app_client) == 2
    bodies = [wire.requests[0].content]
    second = tc.flush()
    assert (second.accepted, second.duplicate, second.remaining) == (0, 2, 0)
    bodies.append(wire.requests[1].content)
    assert bodies[0] == bodies[1]  # the very same encoded reports: no re-randomisation, no extra spend
    assert cloud_reports(app_client) == 2
    tc.close()


def test_batches_shrink_to_what_the_cloud_accepts(tmp_path: Path, tiny_bundle: Path) -> None:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'cloud.db'}",
        data_dir=tmp_path / "cloud",
        admin_token=ADMIN,
        signing_key=private_key_to_pem(Ed25519PrivateKey.generate()).decode(),
        max_model_bytes=10_000_000,
        max_reports_per_batch=2,
        k_min=1,
    )
    with TestClient(create_app(settings)) as app_client:
        archive = pack_bundle(tiny_bundle)
        admin = {"Authorization": f"Bearer {ADMIN}"}
        version = app_client.post(
            "/v1/models", content=archive, headers={**admin, "Content-Type": "application/gzip"}
        ).json()["version"]
        assert (
            app_client.put("/v1/rollout", json={"version": version, "percent": 100}, headers=admin).status_code == 200
        )
        tc = device(app_client, Wire(app_client), tmp_path / "o.db", batch_size=10)
        for m, v in ONE_EACH:
            tc.record(m, v, model_version=version)
        result = tc.flush()
        assert (result.accepted, result.remaining, result.error) == (3, 0, None)
        tc.close()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    make: Callable[..., TelemetryClient] = lambda **kw: TelemetryClient(  # noqa: E731
        outbox=tmp_path / "o.db", cloud=httpx.Client(), token="t", **kw
    )
    with pytest.raises(ValueError):
        make(daily_budget=0)
    with pytest.raises(ValueError):
        make(batch_size=501)
    with make() as tc, pytest.raises(ValueError, match="not a category"):
        tc.record("top_genre", "Space Opera", model_version="m-1")


def _event(version: str, ms: float) -> EdgeEvent:
    return EdgeEvent(route="/v1/rank", model_version=version, texts=3, latency_s=ms / 1000, top_k=10, candidates=50)


def test_latency_hook_reports_once_per_day(cloud, tmp_path: Path) -> None:
    app_client, version = cloud
    wire = Wire(app_client)
    today = [DAY - dt.timedelta(days=1)]
    token = enrol(app_client, "phone-1")
    tc = TelemetryClient(outbox=tmp_path / "o.db", cloud=wire.client(), token=token, today=lambda: today[0])
    hook = LatencyTelemetry(tc, min_events=5)
    assert isinstance(hook, TelemetryHook)
    for ms in (3.0, 4.0):  # yesterday: too few events to report yet
        hook.observe(_event(version, ms))
    assert hook.report_and_flush().sent == 0
    today[0] = DAY  # the day is over: its median (3.5 ms) goes out, stamped with its own day
    for ms in (30.0, 31.0, 29.0, 40.0, 35.0, 33.0):  # today: enough events, median 32 ms
        hook.observe(_event(version, ms))
    result = hook.report_and_flush()
    assert (result.accepted, result.remaining) == (2, 0)
    for _ in range(50):
        hook.observe(_event(version, 90.0))
    assert hook.report_and_flush().sent == 0  # today was already reported: once per day, budget untouched
    assert tc.spent(DAY) == pytest.approx(0.3) and tc.spent(DAY - dt.timedelta(days=1)) == pytest.approx(0.3)
    days = sorted(rep["day"] for r in wire.requests for rep in json.loads(r.content)["reports"])
    assert days == [(DAY - dt.timedelta(days=1)).isoformat(), DAY.isoformat()]
    for r in wire.requests:  # report ids are random uuids: look at everything else
        sent = json.dumps(
            [{k: v for k, v in rep.items() if k != "report_id"} for rep in json.loads(r.content)["reports"]]
        )
        assert "32" not in sent and "3.5" not in sent and '"<50ms"' not in sent
    tc.close()


def test_latency_hook_lifecycle_flushes_at_stop(cloud, tmp_path: Path) -> None:
    import asyncio

    app_client, version = cloud
    tc = device(app_client, Wire(app_client), tmp_path / "o.db")
    hook = LatencyTelemetry(tc, flush_interval_s=3600, min_events=3)

    async def run() -> None:
        await hook.start()
        for ms in (1.0, 2.0, 3.0):
            hook.observe(_event(version, ms))
        await hook.stop()

    asyncio.run(run())
    assert tc.pending() == 0 and cloud_reports(app_client) == 1
    tc.close()


def test_reports_wait_in_the_outbox_until_the_node_has_enrolled(cloud, tmp_path: Path) -> None:
    """An edge node records before its updater has enrolled; the token getter gates sending, not recording."""
    app_client, version = cloud
    wire = Wire(app_client)
    holder: dict[str, str | None] = {"token": None}
    tc = TelemetryClient(
        outbox=tmp_path / "o.db", cloud=wire.client(), token=lambda: holder["token"], today=lambda: DAY
    )
    tc.record("top_genre", "Drama", model_version=version)
    first = tc.flush()
    assert first.error == "not enrolled yet" and first.remaining == 1 and wire.requests == []
    holder["token"] = enrol(app_client, "phone-9")
    assert tc.flush().accepted == 1 and tc.pending() == 0 and cloud_reports(app_client) == 1
    tc.close()


def test_the_edge_utc_date_label_is_inside_the_cloud_window(cloud, tmp_path: Path) -> None:
    """The edge labels reports with its own UTC date (the default `today`): the cloud's window accepts that
    day and the day before (a report queued offline yesterday), and refuses older ones, which the device
    then drops from its outbox (an answer, not an error)."""
    app_client, version = cloud
    wire = Wire(app_client)
    with TelemetryClient(outbox=tmp_path / "o.db", cloud=wire.client(), token=enrol(app_client, "phone-1")) as tc:
        assert tc.record("top_genre", "Drama", model_version=version)  # today, by the UTC clock
        assert tc.record("top_genre", "War", model_version=version, day=DAY - dt.timedelta(days=1))
        assert tc.record("top_genre", "IMAX", model_version=version, day=DAY - dt.timedelta(days=2))
        result = tc.flush()
        assert (result.accepted, result.refused, result.remaining) == (2, 1, 0)
    assert cloud_reports(app_client) == 2


def test_an_impostor_clouds_gzip_bomb_acknowledgement_is_refused(tmp_path: Path) -> None:
    """Issue 22: the same 256 MiB bomb as the answer to a telemetry flush grew the node by 520-757 MB."""
    with impostor_cloud(bomb_answer()) as impostor, httpx.Client(base_url=impostor.url) as http:
        tc = TelemetryClient(outbox=tmp_path / "o.db", cloud=http, token="device-token", today=lambda: DAY)
        tc.record("top_genre", "War", model_version="tiny-1", epsilon=0.1)
        with peak_rss_growth() as growth:
            result = tc.flush()
        tc.close()
    assert growth.mib < 32
    assert result.error is not None and "gzip-encoded" in result.error
    assert result.remaining == 1  # kept for the next flush, to an honest cloud
    assert impostor.requests[0][2]["Accept-Encoding"] == "identity"
