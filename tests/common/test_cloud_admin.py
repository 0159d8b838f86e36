"""The one admin client: enrolment tokens and publish-and-roll-out over HTTP, refusals as one clear error, and
the one place a command-line caller's admin token is read from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from service.common.cloud_admin import ADMIN_TOKEN_ENV, CloudAdmin, admin_token_from_env
from service.common.errors import EibertError


def test_the_admin_token_is_read_stripped_from_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "  s3cret-token \n")
    assert admin_token_from_env() == "s3cret-token"
    monkeypatch.delenv(ADMIN_TOKEN_ENV)
    assert admin_token_from_env() == ""


def test_an_enrolment_token_is_issued_with_the_admin_bearer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"token": "enrol-abc", "max_devices": 3})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, CloudAdmin("http://c/", "adm", client=http) as a:
        assert a.issue_enrolment_token(3, "edge") == "enrol-abc"
    (req,) = seen
    assert (req.method, str(req.url), req.headers["authorization"]) == (
        "POST",
        "http://c/v1/enrolment-tokens",
        "Bearer adm",
    )
    assert json.loads(req.content) == {"max_devices": 3, "label": "edge"}


def test_a_refused_enrolment_token_is_one_error_with_the_clouds_message() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "invalid_request", "message": "max_devices: too many"})

    refused = pytest.raises(EibertError, match=r"refused the enrolment token \(422\): max_devices: too many")
    http = httpx.Client(transport=httpx.MockTransport(handler))
    with http, CloudAdmin("http://c", "adm", client=http) as admin, refused:
        admin.issue_enrolment_token(10**9)


def test_publish_and_roll_out_sets_the_rollout_to_the_published_release(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        return httpx.Response(200, json={"stable": json.loads(request.content)["version"], "percent": 100})

    def publish(_self: CloudAdmin, bundle: Path) -> dict:
        calls.append(("publish", bundle.name))
        return {"version": "tiny-0.0.1", "created": True, "bundle_bytes": 10}

    monkeypatch.setattr(CloudAdmin, "publish", publish)
    with httpx.Client(transport=httpx.MockTransport(handler)) as http, CloudAdmin("http://c", "adm", client=http) as a:
        result = a.publish_and_roll_out(Path("bundles/tiny"), 100)
    assert calls == [("publish", "tiny"), ("PUT", "/v1/rollout")]
    assert result == {"version": "tiny-0.0.1", "created": True, "rollout": {"stable": "tiny-0.0.1", "percent": 100}}
