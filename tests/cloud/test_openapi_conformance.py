"""The cloud against its own OpenAPI document (schemathesis): no 5xx, every answer documented.

The run is authenticated where that reaches more code: the admin token on admin routes, an enrolment token
on enrolment, an enrolled device's token (and its id in the path) on the device routes, and a registered
version in half the version paths.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from schemathesis import Case

from service.cloud import create_app
from tests.cloud.conftest import ADMIN, ADMIN_TOKEN, GZIP, sqlite_settings
from tests.conformance import bearer, run_conformance
from tests.simulators.conftest import serve, stop

DEVICE_ID = "conformance-phone"


def test_cloud_answers_only_what_its_openapi_document_says(tiny_archive: bytes, tmp_path: Path) -> None:
    served = serve(create_app(sqlite_settings(tmp_path)))
    try:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            version = http.post("/v1/models", content=tiny_archive, headers={**ADMIN, **GZIP}).json()["version"]
            assert http.put("/v1/rollout", json={"version": version, "percent": 100}, headers=ADMIN).is_success
            issued = http.post("/v1/enrolment-tokens", json={"max_devices": 10_000}, headers=ADMIN)
            enrolment_token = issued.json()["token"]
            enrolled = http.post("/v1/devices", json={"device_id": DEVICE_ID}, headers=bearer(enrolment_token))
            device_token = enrolled.json()["token"]

        calls = iter(range(1_000_000))

        def prepare(case: Case) -> dict[str, str]:
            if next(calls) % 8 == 0:
                return {}  # every eighth call without a token: the 401 answers are checked too
            params = case.path_parameters or {}
            if "device_id" in params:
                params["device_id"] = DEVICE_ID
            if "version" in params and len(str(params["version"])) % 2 == 0:
                params["version"] = version
            if case.path.startswith("/v1/devices/") or case.path == "/v1/telemetry":
                return bearer(device_token)
            if case.path == "/v1/devices":
                return bearer(enrolment_token)  # operator-issued: reaches 201, 409 and the quota/rate answers
            return bearer(ADMIN_TOKEN)

        result = run_conformance(served.url, prepare=prepare)
    finally:
        stop(served)
    assert result.failures == [], result.report
    assert result.statuses[200] and result.statuses[422], result.statuses  # it reached real answers, both kinds
