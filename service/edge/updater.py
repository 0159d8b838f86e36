"""Model updates: ask the cloud which version to run, fetch it, prove it, load it, swap it in.

One check (`check_once`) runs these steps; the first that fails ends the check, the old model keeps serving,
and the failure is logged, counted (`eibert_edge_model_load_failures_total{stage}`) and shown in GET /v1/model:

    enrol      POST /v1/devices once (the token is persisted); renewed past half its life, or refused if
               revoked (`service.edge.device_token`)
    poll, signature, manifest, deployment, expired, rollback, mix_and_match, download, sha256
               `service.edge.update_protocol` (shared with the simulator's devices): a capped poll, the
               signature over the exact offer bytes (with the key pinned, or followed through the cloud's
               rotations: `service.edge.key_trust`), then the manifest, deployment, expiry, rollback and
               mix-and-match checks against the trusted state persisted in `state_dir/trusted_offer.json`,
               then each file fetched by content address, capped at and hashed against its signed length
    load       open and warm a new session in a worker thread (the loader re-checks every file's sha256
               against manifest.json, written from the signed manifest), then swap (one reference assignment)
    disk       the state directory cannot be written (stage of any OSError)
    internal   anything unexpected (logged with its traceback); the loop carries on

There is no archive on this path: nothing downloaded is parsed before a signature covers its hash and length.
Freshness: the newest valid offer's `issued` is the age of the device's metadata; past `max_metadata_age_s`
(or past its `expires`) GET /v1/model says `stale` instead of `up_to_date`, and so do /readyz and /metrics, so
a cloud (or a man in the middle) that answers 304 forever cannot keep a device quiet on an old model.

Downloaded bundles live in `state_dir/bundles/<release id>-<model sha>`; the serving and previous ones are kept
(a cloud rollback to the previous version then loads from disk, no download), the rest pruned to
`keep_bundles`. The ETag is remembered only after a successful check, so a failed update is retried at the
next poll rather than silenced by a 304.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.common import device_client
from service.common.contract import MODEL_FILE
from service.common.device_api import DeviceEnrolResponse
from service.common.device_client import ResponseRefused
from service.common.errors import BundleError
from service.common.manifest import Manifest
from service.edge.accepted_bundle import accepted_on_disk, manifest_on_disk, serves
from service.edge.device_token import renew, renewal_due
from service.edge.key_trust import KeyTrust
from service.edge.metrics import EdgeMetrics
from service.edge.slot import LoadedModel, ModelSlot, utc_now
from service.edge.tasks import cancel_and_wait
from service.edge.update_protocol import (
    TRUST_FILE,
    FileTrustStore,
    Freshness,
    NothingOffered,
    UpdateFailed,
    VerifiedOffer,
    admit_offer,
    download_files,
    freshness,
    poll_offer,
    validated,
    write_signed_manifest,
)
from service.edge.update_status import UpdateStatus

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "device.json"
BUNDLES_DIR = "bundles"
INCOMING_PREFIX = ".incoming-"
DEFAULT_MAX_METADATA_AGE_S = 2 * 24 * 3600.0
TRUST_RECOVERY = (
    f"restore {TRUST_FILE} from a backup of the state directory, or, having checked that the cloud's current "
    "offer is the one this node should run, restart it once with EIBERT_EDGE_RESET_TRUST=true (--reset-trust) "
    "to trust that offer on first use"
)

__all__ = ["CREDENTIALS_FILE", "ModelUpdater", "UpdateFailed", "UpdateStatus"]


Loader = Callable[[Path], LoadedModel]  # blocking: verify, open, warm
OnSwap = Callable[[LoadedModel, LoadedModel | None], None]


class ModelUpdater:
    """Polls the cloud for the version this device should run and swaps it in safely."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        slot: ModelSlot,
        loader: Loader,
        public_key: Ed25519PublicKey,
        state_dir: Path,
        metrics: EdgeMetrics,
        device_id: str | None = None,
        deployment: str = "default",
        enrolment_token: str | None = None,
        on_swap: OnSwap | None = None,
        poll_interval_s: float = 30.0,
        keep_bundles: int = 2,
        max_bundle_bytes: int = 64 * 1024 * 1024,
        max_metadata_age_s: float = DEFAULT_MAX_METADATA_AGE_S,
        download_timeout_s: float = 600.0,
        reset_trust: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if keep_bundles < 2:
            raise ValueError("keep_bundles must be >= 2 (the serving bundle and the previous one)")
        self.client = client
        self.slot = slot
        self.loader = loader
        self.state_dir = Path(state_dir)
        self.keys = KeyTrust(self.state_dir, public_key, deployment)  # pinned, or followed from it
        self.metrics = metrics
        self.on_swap = on_swap
        self.poll_interval_s = poll_interval_s
        self.keep_bundles = keep_bundles
        self.max_bundle_bytes = max_bundle_bytes
        self.enrolment_token = enrolment_token  # operator-issued credential for the one POST /v1/devices
        self.max_metadata_age_s = max_metadata_age_s
        self.download_timeout_s = download_timeout_s
        self.clock = clock
        self.started_at = clock()
        self.trust = FileTrustStore(self.state_dir)
        self.status = UpdateStatus(enabled=True, freshness=self.freshness)
        self.etag: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.bundles_dir = self.state_dir / BUNDLES_DIR
        self.bundles_dir.mkdir(parents=True, exist_ok=True)
        self._clean_incoming()
        metrics.update_metadata_age.set_function(lambda: self.freshness().age_s)
        metrics.update_stale.set_function(lambda: float(self.freshness().stale))
        self.token_issued: float | None = None  # when this node received its token, and when it expires
        self.token_expires: float | None = None
        self.device_id, self.token, self.had_trust, changed = self._read_credentials(device_id)
        self.trust_lost = self._load_trust()  # why this node cannot judge offers (None: it can)
        if self.trust_lost is not None and reset_trust:
            log.warning(
                "%s; EIBERT_EDGE_RESET_TRUST is set: the next valid offer is trusted on first use", self.trust_lost
            )
            self.trust_lost, self.had_trust = None, False
        if self.status.trusted is not None and not self.had_trust:  # a state dir from before the record existed
            self.had_trust = changed = True
        if changed:
            self._write_credentials()  # persist a generated id at once, so a restart keeps it

    def _load_trust(self) -> str | None:
        """Load the trusted state; a message if it was lost (unreadable, or missing on a node that had trusted an
        offer: `device.json` records that it had). Falling back to trust on first use would accept any unexpired
        older offer, a rollback the lost file existed to refuse."""
        try:
            self.status.trusted = self.trust.load()
        except UpdateFailed as exc:
            return str(exc)
        if self.status.trusted is None and self.had_trust:
            return f"{TRUST_FILE} is missing, but this node had trusted a signed offer before"
        return None

    def freshness(self) -> Freshness:
        return freshness(self.status.trusted, self.clock(), max_age_s=self.max_metadata_age_s, since=self.started_at)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def resume(self) -> str | None:
        """After a restart, serve the newest signed bundle this node accepted rather than its factory bundle.

        The trusted state names the accepted offer's content (release id + signed manifest); the bundle on disk
        whose `manifest.json` hashes to it is loaded through the same admitting, sha256-checking loader as an
        update. If it is not on disk (or fails its checks) the node keeps what it serves and reports `stale`
        until a poll brings the accepted version again. Returns the release id restored, if any.
        """
        trusted = self.status.trusted
        current = self.slot.current
        if trusted is None or (current is not None and serves(current, trusted)):
            return None
        target = accepted_on_disk(self.bundles_dir, trusted)
        if target is not None:
            try:
                model = await asyncio.to_thread(self.loader, target)
            except Exception as exc:  # BundleError, admission, onnxruntime: never crash the start-up
                log.warning("cannot restore %s from %s: %s", trusted.version, target, exc)
            else:
                old = self.slot.swap(model)
                if self.on_swap is not None:
                    self.on_swap(model, old)
                was = old.release_id if old else None
                log.info("restored model %s (accepted before the restart) in place of %s", trusted.version, was)
                return model.release_id
        self.status.behind = True
        serving = current.release_id if current is not None else None
        self._failed(
            "resume",
            f"serving {serving}, not {trusted.version} which this node accepted; that bundle is not on disk, "
            "so the next poll downloads it again",
        )
        return None

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("updater already started")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="model-updater")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            await self.check_once()
            # +-10 % jitter, so a fleet started together does not poll in lockstep.
            await asyncio.sleep(self.poll_interval_s * random.uniform(0.9, 1.1))

    # -- one check ------------------------------------------------------------------------------------------

    async def check_once(self) -> str:
        """Run one update check; returns its outcome: not_modified | up_to_date | updated | nothing_offered |
        failed. `nothing_offered` (the cloud has no version for this device: none released yet, or a canary it is
        outside of) keeps the serving model and is no failure: nothing is counted in the load failures."""
        async with self._lock:
            self.status.last_check = utc_now()
            if self.trust_lost is not None:  # nothing is polled: no offer can be judged without the trusted state
                outcome = self._failed("trust", f"{self.trust_lost}; {TRUST_RECOVERY}")
                self.status.state = "trust_lost"
                return outcome
            try:
                outcome = await self._check()
            except NothingOffered as exc:
                outcome = "nothing_offered"
                self.status.state = "nothing_offered"
                log.info("%s; still serving %s", exc, self.slot.current.release_id if self.slot.current else None)
            except UpdateFailed as exc:
                return self._failed(exc.stage, str(exc))
            except BundleError as exc:  # raised by the shared verification helpers
                return self._failed("manifest", str(exc))
            except httpx.HTTPError as exc:
                return self._failed("poll", f"cloud unreachable: {type(exc).__name__}: {exc}")
            except OSError as exc:  # state dir unwritable, disk full
                return self._failed("disk", f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug must not kill the background loop: report it and poll again later
                log.exception("model update check crashed")
                return self._failed("internal", f"{type(exc).__name__}: {exc}")
            if outcome == "not_modified" and self.status.trusted is None:  # a 304 cannot vouch for anything
                return self._failed("poll", "HTTP 304 to a node that holds no trusted offer")
            if outcome in ("updated", "up_to_date") or (
                outcome == "not_modified" and self.status.state in ("idle", "failed")
            ):
                self.status.state = "updated" if outcome == "updated" else "up_to_date"
            self.status.last_success = self.status.last_check
            self.status.consecutive_failures = 0
            self.status.last_error = self.status.last_error_stage = None  # the failure shown is over
            self.metrics.update_checks.labels(outcome=outcome).inc()
            return outcome

    def _failed(self, stage: str, message: str) -> str:
        serving = self.slot.current.release_id if self.slot.current else None
        # GET /v1/model shows the message: name bundle directories, not where this host keeps them.
        for folder in {str(self.bundles_dir.resolve()), str(self.bundles_dir)}:
            message = message.replace(folder + os.sep, "")
        log.warning("model update failed at %s: %s (still serving %s)", stage, message, serving)
        self.status.state = "enrolment_refused" if self.status.enrolment_refused else "failed"
        self.status.last_error = message
        self.status.last_error_stage = stage
        self.status.consecutive_failures += 1
        self.metrics.load_failures.labels(stage=stage).inc()
        self.metrics.update_checks.labels(outcome="failed").inc()
        return "failed"

    async def _check(self) -> str:
        token = await self._renew_if_due(await self._ensure_enrolled())
        body, etag = await poll_offer(self.client, self.device_id, token, self.etag)
        if body is None:
            return "not_modified"
        offer = await self.keys.verify(body, self.client)
        self.status.offered_version = offer.version
        trusted = admit_offer(offer, self.status.trusted, self.clock())
        if trusted != self.status.trusted:
            self.trust.save(trusted)  # before any download: a replay of an older offer is refused from now on
            self.status.trusted = trusted
            if not self.had_trust:  # from now on a missing trust file is a loss, not a first start
                self.had_trust = True
                self._write_credentials()
        manifest = offer.manifest
        current = self.slot.current
        if current is not None and _same_bundle(current, manifest):
            self.etag = etag
            return "up_to_date"
        target = self.bundles_dir / f"{manifest.release_id}-{manifest.files[MODEL_FILE].sha256[:12]}"
        reused = target.is_dir() and manifest_on_disk(target) == offer.payload.manifest
        if not reused:
            await self._fetch(offer, token, target)
        try:
            model = await asyncio.to_thread(self.loader, target)
        except Exception as exc:  # BundleError, or onnxruntime's untyped errors: never crash
            # A directory that does not load is useless: forget it, so the next check downloads afresh.
            shutil.rmtree(target, ignore_errors=True)
            raise UpdateFailed("load", f"cannot load {manifest.release_id}: {exc}") from exc
        old = self.slot.swap(model)
        self.status.behind = False
        os.utime(target)  # newest first when pruning
        if self.on_swap is not None:
            self.on_swap(model, old)
        self.metrics.model_swaps.inc()
        self.status.history.append(model.release_id)
        log.info("swapped model %s -> %s", old.release_id if old else None, model.release_id)
        self.etag = etag
        self._prune()
        return "updated"

    # -- steps ----------------------------------------------------------------------------------------------

    async def _ensure_enrolled(self) -> str:
        """Enrol once with the operator-issued enrolment token (EIBERT_EDGE_ENROLMENT_TOKEN[_FILE]); the cloud
        refuses enrolment without one (401)."""
        if self.token is not None:
            return self.token
        credential = self.enrolment_token
        try:
            resp = await device_client.enrol(self.client, self.device_id, credential)
        except httpx.HTTPError as exc:
            raise UpdateFailed("enrol", f"cannot reach the cloud to enrol: {exc}") from exc
        except ResponseRefused as exc:
            raise UpdateFailed("enrol", f"enrolment answer refused: {exc}") from exc
        refused = None
        if resp.status_code == 409:
            refused = (
                f"device {self.device_id} is already enrolled but its token is not in "
                f"{self.state_dir / CREDENTIALS_FILE}; restore that file or use a new device id"
            )
        elif resp.status_code in (401, 403) and credential is None:
            refused = (
                f"enrolment refused (HTTP {resp.status_code}): set EIBERT_EDGE_ENROLMENT_TOKEN or "
                "EIBERT_EDGE_ENROLMENT_TOKEN_FILE to an enrolment token from the operator"
            )
        elif resp.status_code not in (200, 201):
            refused = f"enrolment refused: HTTP {resp.status_code} {resp.text[:200]}"
        if refused is not None:
            if resp.status_code != 429:  # 429 is a pause (Retry-After), not a refusal
                self.status.enrolment_refused = refused  # /readyz: not ready until an enrolment succeeds
            raise UpdateFailed("enrol", refused)
        enrolled = validated(DeviceEnrolResponse, resp.content, stage="enrol", what="malformed enrolment response")
        self.status.enrolment_refused = None
        if enrolled.device_id != self.device_id:
            raise UpdateFailed("enrol", f"cloud enrolled {enrolled.device_id!r}, not {self.device_id!r}")
        self._set_token(enrolled)
        log.info("enrolled as device %s", self.device_id)
        return enrolled.token

    def _set_token(self, answer: DeviceEnrolResponse) -> None:
        self.token, self.token_issued, self.token_expires = answer.token, self.clock(), answer.expires_at
        self._write_credentials()  # before the token is used: a restart must not lose a renewed token

    async def _renew_if_due(self, token: str) -> str:
        """Past half its life, the device token is swapped for a new one (`service.edge.device_token`)."""
        if not renewal_due(self.token_issued, self.token_expires, self.clock()):
            return token
        renewed = await renew(self.client, self.device_id, token)
        if renewed is None:
            return token
        self._set_token(renewed)
        return renewed.token

    async def _fetch(self, offer: VerifiedOffer, token: str, target: Path) -> None:
        """Fetch each signed file into a fresh directory, then move it to `target` (only when all passed)."""
        incoming = self.bundles_dir / f"{INCOMING_PREFIX}{uuid.uuid4().hex}"
        incoming.mkdir()
        try:
            await download_files(
                self.client,
                offer.manifest,
                lambda name: (incoming / name).open("wb"),
                max_total_bytes=self.max_bundle_bytes,
                headers={"Authorization": f"Bearer {token}"},
                deadline_s=self.download_timeout_s,
            )
            write_signed_manifest(incoming, offer)
            if target.exists():
                shutil.rmtree(target)
            incoming.rename(target)
        finally:
            if incoming.exists():
                shutil.rmtree(incoming, ignore_errors=True)

    # -- disk -----------------------------------------------------------------------------------------------

    def _prune(self) -> None:
        """Keep the serving and previous bundles, then the newest, up to `keep_bundles` directories."""
        protected = {p.resolve() for p in (self._serving_source(), self.slot.previous_source) if p is not None}
        dirs = [d for d in self.bundles_dir.iterdir() if d.is_dir() and not d.name.startswith(".")]
        dirs.sort(key=lambda d: d.stat().st_mtime, reverse=True)
        keep = [d for d in dirs if d.resolve() in protected]
        for d in dirs:
            if d in keep:
                continue
            if len(keep) < self.keep_bundles:
                keep.append(d)
            else:
                log.info("pruning old bundle %s", d.name)
                shutil.rmtree(d, ignore_errors=True)

    def _serving_source(self) -> Path | None:
        return self.slot.current.source if self.slot.current else None

    def _clean_incoming(self) -> None:
        for d in self.bundles_dir.glob(f"{INCOMING_PREFIX}*"):
            shutil.rmtree(d, ignore_errors=True)
        for f in (self.state_dir / "tmp").glob("bundle-*"):  # archives of versions before content addressing
            f.unlink(missing_ok=True)

    def _read_credentials(self, configured_id: str | None) -> tuple[str, str | None, bool, bool]:
        """(device id, token or None, whether it had trusted an offer, whether the file must be rewritten); a token
        of another id is dropped."""
        path = self.state_dir / CREDENTIALS_FILE
        stored: dict = {}
        if path.is_file():
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable %s: %s", path, exc)
        device_id = configured_id or stored.get("device_id") or f"edge-{uuid.uuid4().hex[:20]}"
        same = stored.get("device_id") == device_id
        if same and isinstance(stored.get("expires_at"), int | float) and isinstance(stored.get("issued"), int | float):
            self.token_issued, self.token_expires = float(stored["issued"]), float(stored["expires_at"])
        return device_id, stored.get("token") if same else None, stored.get("had_trust") is True, not same

    def _write_credentials(self) -> None:
        path = self.state_dir / CREDENTIALS_FILE
        tmp = path.with_suffix(".tmp")
        record = {"device_id": self.device_id, "token": self.token, "had_trust": self.had_trust}
        if self.token_expires is not None:
            record |= {"issued": self.token_issued, "expires_at": self.token_expires}
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _same_bundle(model: LoadedModel, manifest: Manifest) -> bool:
    """The offered manifest describes exactly the serving bundle's files (same release id, same hashes)."""
    return model.release_id == manifest.release_id and model.manifest.files == manifest.files
