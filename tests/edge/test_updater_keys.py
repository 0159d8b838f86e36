"""An edge node against the real cloud app (issue 22): it follows a signing-key rotation the key it pinned
signed, refuses one it did not sign, and refuses an offer of another deployment signed with the key it trusts
(a staging cloud sharing production's key); a cloud whose key is not the chain's newest refuses to start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from service.cloud import Settings, create_app
from service.common.archive import pack_bundle
from service.common.errors import EibertError
from service.common.key_rotation import sign_rotation
from service.common.signing import private_key_to_pem, public_key_to_b64
from service.edge.key_trust import TRUSTED_KEY_FILE
from service.edge.metrics import EdgeMetrics
from service.edge.slot import ModelSlot, load_model
from service.edge.updater import ModelUpdater

pytestmark = pytest.mark.anyio
ADMIN = "edge-keys-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
K1, K2, EVIL = (Ed25519PrivateKey.generate() for _ in range(3))


@contextmanager
def cloud(root: Path, key: Ed25519PrivateKey, deployment: str = "prod") -> Iterator[TestClient]:
    settings = Settings(
        store_url=f"sqlite:///{root / 'cloud.db'}",
        data_dir=root / "data",
        admin_token=ADMIN,
        signing_key=private_key_to_pem(key).decode(),
        max_model_bytes=10_000_000,
        deployment=deployment,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def release(client: TestClient, bundle: Path) -> None:
    resp = client.post("/v1/models", content=pack_bundle(bundle), headers={**AUTH, "Content-Type": "application/gzip"})
    assert resp.status_code in (200, 201), resp.text
    assert client.put("/v1/rollout", json={"version": resp.json()["version"], "percent": 100}, headers=AUTH)


def node(client: TestClient, bundle: Path, state: Path, deployment: str = "prod") -> ModelUpdater:
    token = client.post("/v1/enrolment-tokens", json={"max_devices": 1}, headers=AUTH).json()["token"]
    return ModelUpdater(
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://cloud"),
        slot=ModelSlot(load_model(bundle)),
        loader=load_model,
        public_key=K1.public_key(),  # what the operator pinned
        state_dir=state,
        metrics=EdgeMetrics(),
        device_id="edge-1",
        deployment=deployment,
        enrolment_token=token,
    )


async def test_the_node_follows_a_rotation_its_pinned_key_signed(tiny_bundle: Path, tmp_path: Path) -> None:
    """Issue 22: one signing key, no way to rotate it. Now: the operator adds K1 -> K2 to the chain, a replica
    still on K1 refuses to start, the cloud on K2 signs offers the node verifies after following the chain."""
    root = tmp_path / "cloud"
    with cloud(root, K1) as c:
        release(c, tiny_bundle)
        up = node(c, tiny_bundle, tmp_path / "edge")
        assert await up.check_once() == "up_to_date"
        wrong = sign_rotation(EVIL, K2, version=2, deployment="prod", issued=1)  # not K1's
        assert c.post("/v1/keys/rotations", json=wrong, headers=AUTH).status_code == 422
        staging = sign_rotation(K1, K2, version=2, deployment="staging", issued=1)
        assert c.post("/v1/keys/rotations", json=staging, headers=AUTH).status_code == 422
        good = sign_rotation(K1, K2, version=2, deployment="prod", issued=1)
        assert c.post("/v1/keys/rotations", json=good, headers=AUTH).status_code == 201
        assert c.post("/v1/keys/rotations", json=good, headers=AUTH).status_code == 422  # K2 is newest now
        assert c.post("/v1/keys/rotations", json=good).status_code == 401
    with pytest.raises(EibertError, match="rotation chain ends at key 2"), cloud(root, K1):
        pass
    with cloud(root, K2) as c:
        assert c.get("/v1/signing-key").json()["key_version"] == 2
        up.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=c.app), base_url="http://cloud")
        outcome = await up.check_once()
        assert outcome == "up_to_date", up.status.last_error
    trusted = json.loads((tmp_path / "edge" / TRUSTED_KEY_FILE).read_text())
    assert trusted["trusted"] == {"version": 2, "key": public_key_to_b64(K2.public_key())}


async def test_the_node_refuses_a_rotation_its_key_did_not_sign(tiny_bundle: Path, tmp_path: Path) -> None:
    """An impostor cloud signs offers with its own key and serves a chain to it that K1 never signed (written
    into its store directly, since its own admin route would refuse it): the node keeps K1 and refuses."""
    with cloud(tmp_path / "impostor", EVIL) as c:
        release(c, tiny_bundle)
        forged = sign_rotation(Ed25519PrivateKey.generate(), EVIL, version=2, deployment="prod", issued=1)
        store = c.app.state.ctx.store
        assert c.portal.call(store.add_rotation, 2, json.dumps(forged))
        up = node(c, tiny_bundle, tmp_path / "edge")
        assert await up.check_once() == "failed"
    assert up.status.last_error_stage == "signature" and "rotation is refused" in (up.status.last_error or "")
    assert up.keys.trusted.key == public_key_to_b64(K1.public_key())
    assert not (tmp_path / "edge" / TRUSTED_KEY_FILE).exists()


async def test_an_offer_of_another_deployment_is_refused_even_with_the_right_key(
    tiny_bundle: Path, other_bundle: Path, tmp_path: Path
) -> None:
    """Issue 22: offers named no deployment, so a staging cloud sharing production's key could fast-forward
    production devices. Now a production node refuses the staging cloud's (validly signed) offer."""
    with cloud(tmp_path / "staging", K1, deployment="staging") as c:
        release(c, other_bundle)
        up = node(c, tiny_bundle, tmp_path / "edge")
        assert await up.check_once() == "failed"
        assert up.status.last_error_stage == "deployment", up.status.last_error
        assert (
            up.slot.current is not None and up.slot.current.release_id == "tiny-0.0.1"
        )  # the tiny bundle still serves
        staged = node(c, tiny_bundle, tmp_path / "staging-edge", deployment="staging")
        staged.device_id = "edge-2"
        assert await staged.check_once() == "updated"
