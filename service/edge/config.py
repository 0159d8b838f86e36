"""Edge node settings: one pydantic-settings class, environment prefix `EIBERT_EDGE_`.

Read once at startup (`eibert edge` builds it from flags + environment) and passed to `create_app(settings)`;
nothing reads the environment at import time, so tests build as many differently-configured apps as they like.
A node that polls a cloud must pin the cloud's public key: without it no downloaded model could be trusted,
so the settings refuse that combination up front instead of failing at the first update.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.common.device_api import DEVICE_ID_PATTERN
from service.common.errors import BundleError
from service.common.http_server import ServerLimits
from service.common.model_admission import AdmissionLimits
from service.common.signing import public_key_from_b64

MIB = 1024 * 1024


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EIBERT_EDGE_", extra="forbid")

    bundle: Path  # the bundle served at startup (and until an update replaces it)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # the reverse proxies whose X-Forwarded-For is believed (JSON list; none by default), and how long a
    # request may take to arrive, headers and then the whole body (service/common/http_server.py)
    trusted_proxies: tuple[str, ...] = ()
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    request_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    threads: int = Field(default=1, ge=1, le=64)  # onnxruntime intra-op threads per session
    # numpy BLAS threads (the ranker's matrix products), set by `eibert edge` for its process: products this
    # small are many times slower with several BLAS threads spinning on a busy CPU (16 ms vs 1 ms per rank).
    blas_threads: int = Field(default=1, ge=1, le=64)
    warm_up: bool = True

    # Merge concurrent /v1/encode, /v1/embeddings and /v1/rank texts into one onnxruntime run. Opt-in:
    # `eibert bench --sections edge` measures it against no batching in one run, and for this model (a short
    # text is ~0.2 ms) it has not raised the server's capacity by the 20% that would justify it: merged texts
    # save little model time, while the queue, the futures and the worker thread cost more per request.
    batching: bool = False
    max_batch_size: int = Field(default=32, ge=1, le=1024)  # texts per run
    batch_workers: int = Field(default=1, ge=1, le=64)  # batches run at once, each in its own worker thread
    max_wait_ms: float = Field(default=0.0, ge=0.0, le=1000.0)  # extra wait for a batch to fill; 0 = take what queued
    # Run a batch on the event loop when texts x the model's measured short-text cost is within this budget:
    # for a small model the worker-thread hand-off costs more than the inference. 0 (the default) = always a
    # worker thread, tokenising included: a tokenizer's cost on one text is the bundle's to decide (issue 22: a
    # regex pre-tokenizer took 4.3 s for one text and stalled /healthz), so only opt in for bundles you trust.
    inline_budget_ms: float = Field(default=0.0, ge=0.0, le=50.0)
    cache_size: int = Field(default=8192, ge=0)  # embedding rows kept (0 disables); 8192 x 384 x 4 B = 12.6 MB
    # ... and bytes: texts are keys, up to 4 bytes per character (service/edge/cache.py); 8,192 rows of dim 384
    # with typical 50-character texts take ~15.6 MB, so this bounds an adversary, not honest use
    cache_max_bytes: int = Field(default=24 * MIB, ge=0)
    max_body_bytes: int = Field(default=1 * MIB, ge=1024)  # larger request bodies get 413 before parsing

    cloud: str | None = None  # cloud base URL; enables model updates
    cloud_public_key: str | None = None  # base64 raw Ed25519 key the cloud signs manifests with
    cloud_public_key_file: Path | None = None  # or a file holding it
    device_id: str | None = Field(default=None, pattern=DEVICE_ID_PATTERN)  # default: generated once, persisted
    # the cloud deployment this node belongs to: an offer naming another is refused (EIBERT_CLOUD_DEPLOYMENT)
    deployment: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    state_dir: Path = Path(".eibert-edge")  # device token, downloaded bundles
    # the operator-issued enrolment token (cloud: POST /v1/enrolment-tokens) the node enrols with, once;
    # inline, or a file holding it (a secrets volume). Not needed once state_dir holds the device token.
    enrolment_token: SecretStr | None = None
    enrolment_token_file: Path | None = None
    poll_interval_s: float = Field(default=30.0, ge=0.05)
    keep_bundles: int = Field(default=2, ge=2)  # downloaded bundle dirs kept (serving + previous for rollback)
    max_bundle_bytes: int = Field(default=64 * MIB, ge=1)  # a bigger download is refused
    # Older signed metadata makes the node report `stale` (GET /v1/model, /readyz, /metrics). A healthy cloud
    # re-signs every EIBERT_CLOUD_OFFER_TTL_S / 2 (12 h by default), so this must exceed that plus a poll.
    max_metadata_age_s: float = Field(default=2 * 24 * 3600.0, gt=0)
    download_timeout_s: float = Field(default=600.0, gt=0)  # all files of one update, however slowly they drip
    # Recovery after state_dir/trusted_offer.json was lost (the node then refuses every offer and says so): run
    # once with this set to trust the cloud's next valid offer on first use, then unset it.
    reset_trust: bool = False
    admission: AdmissionLimits = AdmissionLimits()  # budgets for updated models, as JSON: EIBERT_EDGE_ADMISSION
    http_timeout_s: float = Field(default=30.0, gt=0)
    # LDP fleet telemetry (only with a cloud): the day's median serving latency, once a day, from a durable
    # outbox under state_dir, within a daily epsilon budget; raw text never leaves the node.
    telemetry: bool = True
    telemetry_daily_epsilon: float = Field(default=1.0, gt=0, le=100)
    telemetry_flush_s: float = Field(default=60.0, ge=0.05)

    log_level: str = "info"

    # load shedding: encoding work admitted and not yet done, in characters the model reads (service/edge/
    # embedder.py); past it, 429 + Retry-After. 200,000 is ~0.6 s of work for 0.3.0 on one busy core, and ~2,400
    # typical MovieLens texts (49 characters on average): sixteen concurrent 50 x 100 rank calls, all fresh.
    max_pending_chars: int = Field(default=200_000, ge=1)

    @field_validator("cloud")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"cloud must be an http(s) URL, got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _cloud_needs_pinned_key(self) -> EdgeSettings:
        if self.cloud is not None:
            if self.cloud_public_key is None and self.cloud_public_key_file is None:
                raise ValueError(
                    "cloud updates need the cloud's pinned public key: set EIBERT_EDGE_CLOUD_PUBLIC_KEY "
                    "(base64 raw Ed25519) or EIBERT_EDGE_CLOUD_PUBLIC_KEY_FILE"
                )
            try:
                self.pinned_public_key()
            except (BundleError, OSError) as exc:
                raise ValueError(str(exc)) from exc
        return self

    def server_limits(self) -> ServerLimits:
        return ServerLimits(
            trusted_proxies=self.trusted_proxies,
            header_timeout_s=self.header_timeout_s,
            request_timeout_s=self.request_timeout_s,
        )

    def enrolment_credential(self) -> str | None:
        """The enrolment token (inline wins over the file), stripped; None if neither is set."""
        if self.enrolment_token is not None:
            return self.enrolment_token.get_secret_value().strip() or None
        if self.enrolment_token_file is not None:
            return self.enrolment_token_file.read_text(encoding="utf-8").strip() or None
        return None

    def pinned_public_key(self) -> Ed25519PublicKey:
        """The cloud's signing key; the inline value wins over the file."""
        if self.cloud_public_key is not None:
            return public_key_from_b64(self.cloud_public_key)
        if self.cloud_public_key_file is not None:
            return public_key_from_b64(self.cloud_public_key_file.read_text(encoding="utf-8"))
        raise BundleError("no pinned cloud public key configured")
