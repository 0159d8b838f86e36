"""The rollout state machine (pure), then the same transitions over HTTP on both stores."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from service.cloud.errors import RolloutError, UnknownVersionError
from service.cloud.rollout import MAX_HISTORY, RolloutState, assign, bucket, rollback, set_rollout
from tests.cloud.conftest import ADMIN, enrol, open_offer_response, publish

DEVICES = [f"dev-{i}" for i in range(2000)]


def test_bucket_is_stable_uniform_and_version_specific() -> None:
    assert bucket("dev-1", "m-1") == bucket("dev-1", "m-1")
    counts = [0] * 100
    for d in DEVICES:
        counts[bucket(d, "m-2")] += 1
    assert min(counts) > 5 and max(counts) < 40  # 20 expected per bucket
    same = sum(bucket(d, "m-1") == bucket(d, "m-2") for d in DEVICES)
    assert same < 0.05 * len(DEVICES)  # each version draws its own cohort


def test_ramp_is_monotone_and_proportional() -> None:
    state = set_rollout(RolloutState(), "m-1", 100, known=True)
    previous: set[str] = set()
    for pct in (1, 10, 25, 50, 99):
        state = set_rollout(state, "m-2", pct, known=True)
        on = {d for d in DEVICES if assign(state, d) == "m-2"}
        assert previous <= on  # nobody leaves the candidate while it ramps up
        assert abs(len(on) / len(DEVICES) - pct / 100) < 0.04
        assert all(assign(state, d) == "m-1" for d in set(DEVICES) - on)
        previous = on
    state = set_rollout(state, "m-2", 100, known=True)
    assert state.stable == "m-2" and state.candidate is None and state.history == ("m-1",)
    assert {assign(state, d) for d in DEVICES} == {"m-2"}


def test_transitions_and_refusals() -> None:
    empty = RolloutState()
    assert assign(empty, "d") is None
    with pytest.raises(UnknownVersionError):
        set_rollout(empty, "ghost", 10, known=False)
    with pytest.raises(RolloutError, match="nothing to roll back"):
        rollback(empty)
    canary = set_rollout(empty, "m-1", 30, known=True)  # first release may be staged: others get nothing yet
    assert {assign(canary, d) for d in DEVICES} == {"m-1", None}
    s1 = set_rollout(empty, "m-1", 100, known=True)
    with pytest.raises(RolloutError, match="stable"):
        set_rollout(s1, "m-1", 50, known=True)
    c2 = set_rollout(s1, "m-2", 40, known=True)
    c3 = set_rollout(c2, "m-3", 40, known=True)  # replacing the candidate abandons m-2
    assert {assign(c3, d) for d in DEVICES} == {"m-1", "m-3"}
    cancelled = rollback(c3)
    assert cancelled.stable == "m-1" and cancelled.candidate is None
    s3 = set_rollout(cancelled, "m-3", 100, known=True)
    back = rollback(s3)
    assert back.stable == "m-1" and back.history == ()
    gens = [s.generation for s in (empty, s1, c2, c3, cancelled, s3, back)]
    assert gens == sorted(gens) and len(set(gens)) == len(gens)


def test_history_is_bounded() -> None:
    state = RolloutState()
    for i in range(MAX_HISTORY + 10):
        state = set_rollout(state, f"m-{i}", 100, known=True)
    assert len(state.history) == MAX_HISTORY


# ------------------------------------------------------------------------------------------------ over HTTP


def test_rollout_endpoints_need_admin(client: TestClient) -> None:
    assert client.put("/v1/rollout", json={"version": "x", "percent": 5}).status_code == 401
    bad = {"Authorization": "Bearer wrong-token-wrong-token"}
    assert client.put("/v1/rollout", json={"version": "x", "percent": 5}, headers=bad).status_code == 403
    assert client.post("/v1/rollback", headers=bad).status_code == 403


def test_rollout_over_http(client: TestClient, make_variant: Callable[[str], bytes]) -> None:
    v1, v2 = publish(client, make_variant("1.0.0")), publish(client, make_variant("2.0.0"))
    tokens = {d: enrol(client, d) for d in (f"phone-{i}" for i in range(60))}

    def versions() -> dict[str, str]:
        out = {}
        for d, h in tokens.items():
            resp = client.get(f"/v1/devices/{d}/model", headers=h)
            assert resp.status_code == 200, resp.text
            out[d] = open_offer_response(client, resp).version
        return out

    resp = client.put("/v1/rollout", json={"version": "ghost-1", "percent": 10}, headers=ADMIN)
    assert resp.status_code == 404
    for body in ({"version": v1, "percent": 101}, {"version": v1}, {"version": v1, "percent": 5, "x": 1}):
        assert client.put("/v1/rollout", json=body, headers=ADMIN).status_code == 422
    assert client.post("/v1/rollback", headers=ADMIN).status_code == 409

    assert client.put("/v1/rollout", json={"version": v1, "percent": 100}, headers=ADMIN).json()["stable"] == v1
    assert set(versions().values()) == {v1}
    state = client.put("/v1/rollout", json={"version": v2, "percent": 50}, headers=ADMIN).json()
    assert state["candidate"] == v2 and state["percent"] == 50 and state["previous_stable"] is None
    half = versions()
    expected = {d: v2 if bucket(d, v2) < 50 else v1 for d in tokens}
    assert half == expected and set(half.values()) == {v1, v2}

    state = client.put("/v1/rollout", json={"version": v2, "percent": 100}, headers=ADMIN).json()
    assert state["stable"] == v2 and state["previous_stable"] == v1
    assert set(versions().values()) == {v2}
    assert client.get("/v1/rollout").json()["stable"] == v2

    state = client.post("/v1/rollback", headers=ADMIN).json()
    assert state["stable"] == v1 and state["candidate"] is None
    assert set(versions().values()) == {v1}
