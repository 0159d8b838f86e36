"""A small client for the cloud's admin API (publish a bundle, show and change the rollout, issue enrolment
tokens): one client, many callers (`eibert publish`, `eibert rollout`, the dev stack that the demo, the load
tests and the benchmarks start, the tests). It speaks HTTP only, so it lives here rather than in the cloud:
the tools that use it never import the cloud's internals.

Every refusal becomes an `EibertError` carrying the cloud's own message, so a caller prints one clear line.
The admin token a command-line caller holds is read from the environment in one place, `admin_token_from_env`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from service.common.archive import pack_bundle
from service.common.closing import Closing
from service.common.errors import EibertError
from service.common.manifest import verify_bundle

PUBLISH_TIMEOUT_S = 300.0
ADMIN_TIMEOUT_S = 30.0
ADMIN_TOKEN_ENV = "EIBERT_ADMIN_TOKEN"  # the cloud reads the same variable (service/cloud/config.py)


def admin_token_from_env() -> str:
    """The operator's admin token from `EIBERT_ADMIN_TOKEN`, stripped; "" when unset."""
    return os.environ.get(ADMIN_TOKEN_ENV, "").strip()


def _message(resp: httpx.Response) -> str:
    """The error text of a refusal: the `message` of the one error body both apps answer, else the raw text
    (a proxy in between may answer anything)."""
    try:
        message = resp.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return message if isinstance(message, str) else resp.text[:500]


class CloudAdmin(Closing):
    """The admin endpoints of one cloud, authenticated with its admin token."""

    def __init__(self, cloud_url: str, token: str, *, client: httpx.Client | None = None) -> None:
        if not token:
            raise EibertError(f"no admin token: set {ADMIN_TOKEN_ENV} (the cloud's admin token)")
        self.base = cloud_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self._own = client is None
        self.http = client or httpx.Client(timeout=ADMIN_TIMEOUT_S)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = {**self.headers, **kwargs.pop("headers", {})}
            resp = self.http.request(method, f"{self.base}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise EibertError(f"cannot reach the cloud at {self.base}: {exc}") from exc
        if resp.status_code >= 400:
            raise EibertError(f"cloud refused {what} ({resp.status_code}): {_message(resp)}")
        return resp

    def publish(self, bundle_dir: Path) -> dict[str, Any]:
        """Verify the bundle locally, pack it and upload it; the registered version's JSON plus `created`."""
        verify_bundle(bundle_dir)  # fail fast, before the upload, on a bundle that cannot pass the cloud's check
        resp = self._call(
            "POST",
            "/v1/models",
            "the bundle",
            content=pack_bundle(bundle_dir),
            headers={"Content-Type": "application/gzip"},
            **({"timeout": PUBLISH_TIMEOUT_S} if self._own else {}),  # a caller's client keeps its own timeouts
        )
        body = resp.json()
        body["created"] = resp.status_code == 201
        return body

    def rollout(self) -> dict[str, Any]:
        return self._call("GET", "/v1/rollout", "the rollout query").json()

    def set_rollout(self, version: str, percent: int) -> dict[str, Any]:
        return self._call("PUT", "/v1/rollout", "the rollout", json={"version": version, "percent": percent}).json()

    def rollback(self) -> dict[str, Any]:
        return self._call("POST", "/v1/rollback", "the rollback").json()

    def create_enrolment_token(self, max_devices: int, expires_in_s: int, label: str) -> dict[str, Any]:
        """The operator verb's answer whole: the token, its id, limits and expiry."""
        body = {"max_devices": max_devices, "expires_in_s": expires_in_s, "label": label}
        return self._call("POST", "/v1/enrolment-tokens", "the enrolment token", json=body).json()

    def enrolment_tokens(self) -> dict[str, Any]:
        return self._call("GET", "/v1/enrolment-tokens", "the enrolment token list").json()

    def revoke_enrolment_token(self, token_id: str) -> None:
        self._call("DELETE", f"/v1/enrolment-tokens/{token_id}", "the revocation")

    def signing_key(self) -> dict[str, Any]:
        return self._call("GET", "/v1/signing-key", "the signing key query").json()

    def add_rotation(self, statement: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/keys/rotations", "the key rotation", json=statement).json()

    def revoke_device(self, device_id: str) -> None:
        self._call("DELETE", f"/v1/devices/{device_id}", "the revocation")

    def issue_enrolment_token(self, max_devices: int, label: str = "") -> str:
        """An operator-issued enrolment token good for `max_devices` devices (POST /v1/devices needs one)."""
        body = {"max_devices": max_devices, "label": label}
        return str(self._call("POST", "/v1/enrolment-tokens", "the enrolment token", json=body).json()["token"])

    def publish_and_roll_out(self, bundle_dir: Path, percent: int = 100) -> dict[str, Any]:
        """Upload `bundle_dir` and roll its release out to `percent`: the release id, `created` and the rollout."""
        published = self.publish(bundle_dir)
        rollout = self.set_rollout(published["version"], percent)
        return {"version": published["version"], "created": published["created"], "rollout": rollout}


def publish_bundle(bundle_dir: Path, cloud_url: str, token: str, *, client: httpx.Client | None = None) -> dict:
    """Upload one bundle (see `CloudAdmin.publish`); raises EibertError with the cloud's message on refusal."""
    with CloudAdmin(cloud_url, token, client=client) as admin:
        return admin.publish(Path(bundle_dir))
