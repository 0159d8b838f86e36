"""Model updates: ask the cloud which version to run, fetch it, prove it, load it, swap it in.

One check (`check_once`) runs these steps; the first that fails ends the check, the old model keeps serving,
and the failure is logged, counted (`eibert_edge_model_load_failures_total{stage}`) and shown in GET /v1/model:

    enrol      POST /v1/devices once; the token is persisted, so a restart does not re-enrol
    poll, signature, manifest, expired, rollback, mix_and_match, download, sha256
               `service.edge.update_protocol` (shared with the simulator's devices): a capped poll, the
               signature over the exact offer bytes, then the manifest, expiry, rollback (generation) and
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

Downloaded bundles live in `state_dir/bundles/<version>-<model sha>`; the serving and previous ones are kept
(a cloud rollback to the previous version then loads from disk, no download), the rest pruned to
`keep_bundles`. The ETag is remembered only after a successful check, so a failed update is retried at the
next poll rather than silenced by a 304.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from service.common import device_client
from service.common.contract import MANIFEST_FILE, MODEL_FILE
from service.common.device_api import DeviceEnrolResponse
from service.common.device_client import ResponseRefused
from service.common.errors import BundleError
from service.common.manifest import Manifest
from service.edge.metrics import EdgeMetrics
from service.edge.schemas import UpdateStatusPublic
from service.edge.slot import LoadedModel, ModelSlot, utc_now
from service.edge.tasks import cancel_and_wait
from service.edge.update_protocol import (
    TRUST_FILE,
    FileTrustStore,
    Freshness,
    TrustedState,
    UpdateFailed,
    VerifiedOffer,
    admit_offer,
    download_files,
    freshness,
    poll_offer,
    validated,
    verify_offer,
    write_signed_manifest,
)

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


@dataclass
class UpdateStatus:
    enabled: bool
    state: str = "idle"
    last_check: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_stage: str | None = None
    consecutive_failures: int = 0
    offered_version: str | None = None
    history: list[str] = field(default_factory=list)  # versions swapped in by this updater, oldest first
    trusted: TrustedState | None = None  # the newest accepted signed offer
    freshness: Callable[[], Freshness] | None = None  # None: updates disabled, nothing can be stale

    def public(self) -> UpdateStatusPublic:
        fresh = self.freshness() if self.freshness is not None else None
        stale = fresh is not None and fresh.stale
        t = self.trusted
        return UpdateStatusPublic(
            enabled=self.enabled,
            # A failure says more than "stale" (its stage is shown); anything that would claim all is well does not.
            state="stale" if stale and self.state in ("idle", "up_to_date", "updated") else self.state,
            stale=stale,
            metadata_age_s=round(fresh.age_s, 3) if fresh is not None else None,
            generation=t.generation if t is not None else None,
            metadata_issued=_iso(t.issued) if t is not None else None,
            metadata_expires=_iso(t.expires) if t is not None else None,
            last_check=self.last_check,
            last_success=self.last_success,
            last_error=self.last_error,
            last_error_stage=self.last_error_stage,
            consecutive_failures=self.consecutive_failures,
            offered_version=self.offered_version,
        )


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
        self.public_key = public_key
        self.state_dir = Path(state_dir)
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
        """Run one update check; returns its outcome: not_modified | up_to_date | updated | failed."""
        async with self._lock:
            self.status.last_check = utc_now()
            if self.trust_lost is not None:  # nothing is polled: no offer can be judged without the trusted state
                outcome = self._failed("trust", f"{self.trust_lost}; {TRUST_RECOVERY}")
                self.status.state = "trust_lost"
                return outcome
            try:
                outcome = await self._check()
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
            if outcome != "not_modified" or self.status.state in ("idle", "failed"):
                self.status.state = "updated" if outcome == "updated" else "up_to_date"
            self.status.last_success = self.status.last_check
            self.status.consecutive_failures = 0
            self.metrics.update_checks.labels(outcome=outcome).inc()
            return outcome

    def _failed(self, stage: str, message: str) -> str:
        serving = self.slot.current.version if self.slot.current else None
        # GET /v1/model shows the message: name bundle directories, not where this host keeps them.
        for folder in {str(self.bundles_dir.resolve()), str(self.bundles_dir)}:
            message = message.replace(folder + os.sep, "")
        log.warning("model update failed at %s: %s (still serving %s)", stage, message, serving)
        self.status.state = "failed"
        self.status.last_error = message
        self.status.last_error_stage = stage
        self.status.consecutive_failures += 1
        self.metrics.load_failures.labels(stage=stage).inc()
        self.metrics.update_checks.labels(outcome="failed").inc()
        return "failed"

    async def _check(self) -> str:
        token = await self._ensure_enrolled()
        body, etag = await poll_offer(self.client, self.device_id, token, self.etag)
        if body is None:
            return "not_modified"
        offer = self._verify(body)
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
        target = self.bundles_dir / f"{manifest.version}-{manifest.files[MODEL_FILE].sha256[:12]}"
        reused = target.is_dir() and _manifest_on_disk(target) == offer.payload.manifest
        if not reused:
            await self._fetch(offer, token, target)
        try:
            model = await asyncio.to_thread(self.loader, target)
        except Exception as exc:  # BundleError, or onnxruntime's untyped errors: never crash
            # A directory that does not load is useless: forget it, so the next check downloads afresh.
            shutil.rmtree(target, ignore_errors=True)
            raise UpdateFailed("load", f"cannot load {manifest.version}: {exc}") from exc
        old = self.slot.swap(model)
        os.utime(target)  # newest first when pruning
        if self.on_swap is not None:
            self.on_swap(model, old)
        self.metrics.model_swaps.inc()
        self.status.history.append(model.version)
        log.info("swapped model %s -> %s", old.version if old else None, model.version)
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
        if resp.status_code == 409:
            raise UpdateFailed(
                "enrol",
                f"device {self.device_id} is already enrolled but its token is not in "
                f"{self.state_dir / CREDENTIALS_FILE}; restore that file or use a new device id",
            )
        if resp.status_code in (401, 403) and credential is None:
            raise UpdateFailed(
                "enrol",
                f"enrolment refused (HTTP {resp.status_code}): set EIBERT_EDGE_ENROLMENT_TOKEN or "
                "EIBERT_EDGE_ENROLMENT_TOKEN_FILE to an enrolment token from the operator",
            )
        if resp.status_code not in (200, 201):
            raise UpdateFailed("enrol", f"enrolment refused: HTTP {resp.status_code} {resp.text[:200]}")
        enrolled = validated(DeviceEnrolResponse, resp.content, stage="enrol", what="malformed enrolment response")
        if enrolled.device_id != self.device_id:
            raise UpdateFailed("enrol", f"cloud enrolled {enrolled.device_id!r}, not {self.device_id!r}")
        self.token = enrolled.token
        self._write_credentials()
        log.info("enrolled as device %s", self.device_id)
        return self.token

    def _verify(self, body: bytes) -> VerifiedOffer:
        return verify_offer(body, self.public_key)

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
        return device_id, stored.get("token") if same else None, stored.get("had_trust") is True, not same

    def _write_credentials(self) -> None:
        path = self.state_dir / CREDENTIALS_FILE
        tmp = path.with_suffix(".tmp")
        record = {"device_id": self.device_id, "token": self.token, "had_trust": self.had_trust}
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


def _manifest_on_disk(bundle_dir: Path) -> dict | None:
    try:
        return json.loads((bundle_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _same_bundle(model: LoadedModel, manifest: Manifest) -> bool:
    """The offered manifest describes exactly the serving bundle's files (same version, same hashes)."""
    return model.version == manifest.version and model.manifest.files == manifest.files


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
