"""The one reader of cloud answers on a device, against a real HTTP server on loopback: identity asked for,
anything else refused unread, every body capped (a gzip bomb costs the device nothing)."""

from __future__ import annotations

import httpx
import pytest

from service.common import device_client
from service.common.device_client import ResponseRefused
from tests.common.http_bombs import MIB, Answer, bomb_answer, impostor_cloud
from tests.rss import peak_rss_growth

pytestmark = pytest.mark.anyio
RSS_BOUND_MIB = 32  # the bomb inflates to 256 MiB; the cap lets through at most its cap plus one 64 KiB chunk


async def test_a_gzip_bomb_is_refused_unread_and_costs_no_memory() -> None:
    with impostor_cloud(bomb_answer()) as cloud:
        async with httpx.AsyncClient(base_url=cloud.url) as client:
            with peak_rss_growth() as growth, pytest.raises(ResponseRefused, match="gzip-encoded"):
                await device_client.arequest(client, "POST", "/v1/devices", cap=MIB, json={"device_id": "d"})
    assert growth.mib < RSS_BOUND_MIB
    assert cloud.requests[0][2]["Accept-Encoding"] == "identity"


def test_the_synchronous_reader_refuses_the_bomb_too() -> None:
    with (
        impostor_cloud(bomb_answer()) as cloud,
        httpx.Client(base_url=cloud.url) as client,
        peak_rss_growth() as growth,
        pytest.raises(ResponseRefused, match="gzip-encoded"),
    ):
        device_client.request(client, "POST", "/v1/telemetry", cap=MIB, json={"reports": []})
    assert growth.mib < RSS_BOUND_MIB
    assert cloud.requests[0][2]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
async def test_an_identity_body_past_its_cap_is_refused(status: int, declared: bool) -> None:
    with impostor_cloud(Answer(status=status, body=b"x" * (64 * MIB), declare_length=declared)) as cloud:
        async with httpx.AsyncClient(base_url=cloud.url) as client:
            with peak_rss_growth() as growth, pytest.raises(ResponseRefused) as refused:
                await device_client.arequest(client, "GET", "/v1/models", cap=MIB)
    assert growth.mib < RSS_BOUND_MIB
    assert ("declares" if declared else "longer than") in str(refused.value)


async def test_an_honest_answer_is_read_whole() -> None:
    body = b'{"device_id": "d", "token": "t"}'
    with impostor_cloud(Answer(status=201, body=body)) as cloud:
        async with httpx.AsyncClient(base_url=cloud.url) as client:
            resp = await device_client.enrol(client, "d", "enrolment-token")
    assert (resp.status_code, resp.json()) == (201, {"device_id": "d", "token": "t"})
    assert cloud.requests[0][2]["Authorization"] == "Bearer enrolment-token"
