"""The cloud's clock (service/cloud/clock.py): readable by anyone, advanced only by an admin of a dev-mode
cloud, only forward, kept in the store (so a restart or another replica agrees)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from tests.cloud.conftest import ADMIN

UTC_TODAY = dt.datetime.now(dt.UTC).date()


def test_clock_shows_the_utc_date_and_window(client: TestClient) -> None:
    body = client.get("/v1/clock").json()
    assert body["today"] == body["utc_date"] == UTC_TODAY.isoformat()
    assert body["offset_days"] == 0 and body["report_window_days"] == 1 and body["advanceable"] is False


def test_advance_is_refused_outside_dev_mode(client: TestClient) -> None:
    resp = client.post("/v1/clock", json={"advance_days": 3}, headers=ADMIN)
    assert resp.status_code == 403 and "dev-mode" in resp.text
    assert client.get("/v1/clock").json()["offset_days"] == 0


def test_advance_needs_the_admin_token_and_moves_forward_only(settings: Settings) -> None:
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev)) as client:
        assert client.post("/v1/clock", json={"advance_days": 1}).status_code == 401
        wrong = {"Authorization": "Bearer not-the-admin-token-at-all"}
        assert client.post("/v1/clock", json={"advance_days": 1}, headers=wrong).status_code == 403
        for bad in (0, -1, 367, "x"):
            assert client.post("/v1/clock", json={"advance_days": bad}, headers=ADMIN).status_code == 422
        body = client.post("/v1/clock", json={"advance_days": 2}, headers=ADMIN).json()
        assert body["offset_days"] == 2 and body["advanceable"] is True
        assert body["today"] == (UTC_TODAY + dt.timedelta(days=2)).isoformat()
    # the offset lives in the store: a restarted (or another) cloud on it has the same day
    with TestClient(create_app(dev)) as again:
        assert again.get("/v1/clock").json()["offset_days"] == 2


def test_a_production_cloud_keeps_the_offset_a_dev_run_left_in_its_store(settings: Settings) -> None:
    """Outside dev mode nothing can move the offset, so the cloud reads it once: still the store's value."""
    dev = settings.model_copy(update={"dev_mode": True})
    with TestClient(create_app(dev)) as client:
        assert client.post("/v1/clock", json={"advance_days": 3}, headers=ADMIN).status_code == 200
    with TestClient(create_app(settings)) as prod:
        for _ in range(2):
            body = prod.get("/v1/clock").json()
            assert body["offset_days"] == 3 and body["advanceable"] is False
            assert body["today"] == (UTC_TODAY + dt.timedelta(days=3)).isoformat()
