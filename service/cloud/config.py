"""Cloud settings: read once at startup (environment, prefix `EIBERT_CLOUD_`) and passed to `create_app`.

Secrets: the admin token comes from `EIBERT_ADMIN_TOKEN` (shared with `eibert publish`) or from a file the cloud
re-reads when it changes, `EIBERT_ADMIN_TOKEN_FILE` (service/cloud/keys.py), the Ed25519 signing
key from `EIBERT_CLOUD_SIGNING_KEY` (PEM text) or `EIBERT_CLOUD_SIGNING_KEY_FILE`. A weak admin token (see
`service.cloud.auth.admin_token_problem`) refuses to start in any mode; outside dev mode so do a missing
admin token and a missing signing key; in dev mode (`EIBERT_CLOUD_DEV_MODE=1`, for `make demo` and local
runs) the app generates them under `data_dir` and logs that it did.

`data_dir` defaults to a per-user state directory (`$XDG_STATE_HOME/eibert/cloud`, else
`~/.local/state/eibert/cloud`), never the working directory: `eibert cloud` run from a checkout leaves the
checkout clean.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.cloud.auth import admin_token_problem
from service.common.http_server import ServerLimits
from service.common.model_admission import AdmissionLimits

DEFAULT_MODEL_BUDGET_BYTES = 1_910_000


def default_data_dir() -> Path:
    """Where a cloud keeps its state when not told: the user's state directory (XDG), not the working one."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "eibert" / "cloud"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EIBERT_CLOUD_", populate_by_name=True, extra="forbid")

    # where state lives
    store_url: str | None = None  # redis://host:port/db or sqlite:///path (default: sqlite under data_dir)
    # a cache of the store's blobs, temp uploads, dev-mode key material (and the SQLite store, by default)
    data_dir: Path = Field(default_factory=default_data_dir)
    redis_prefix: str = Field(default="eibert:", pattern=r"^[A-Za-z0-9_:.-]{0,32}$")
    require_durable_redis: bool = False  # refuse to start unless Redis has appendonly yes + appendfsync always

    # serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # the reverse proxies whose X-Forwarded-For is believed (JSON list of addresses or networks; none by
    # default), and how long a request may take to arrive (service/common/http_server.py); an upload of
    # max_upload_bytes must arrive within request_timeout_s (32 MiB in 120 s: ~280 KB/s)
    trusted_proxies: tuple[str, ...] = ()
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600)

    # secrets
    admin_token: SecretStr | None = Field(default=None, validation_alias=AliasChoices("EIBERT_ADMIN_TOKEN"))
    admin_token_file: Path | None = Field(default=None, validation_alias=AliasChoices("EIBERT_ADMIN_TOKEN_FILE"))
    signing_key: SecretStr | None = None  # PEM (PKCS#8) Ed25519 private key
    signing_key_file: Path | None = None
    dev_mode: bool = False
    # which deployment this cloud serves (production, staging, ...): offers name it and devices configured for
    # another refuse them, and a store is marked by the first cloud's mode and deployment (service/cloud/clock.py)
    deployment: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")

    # registry
    max_model_bytes: int = Field(default=DEFAULT_MODEL_BUDGET_BYTES, gt=0)  # model.onnx size budget
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, gt=0)  # archive body of POST /v1/models
    max_json_bytes: int = Field(default=1024 * 1024, gt=0)  # every other request body
    # Lifetime of a signed device offer (`expires - issued`). Offers are re-signed every half lifetime, so a
    # device polling a healthy cloud always holds one issued at most offer_ttl_s / 2 ago (edges compare that
    # age with their max_metadata_age_s).
    offer_ttl_s: int = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)
    admission: AdmissionLimits = AdmissionLimits()  # model admission budgets, as JSON: EIBERT_CLOUD_ADMISSION
    max_concurrent_admissions: int = Field(default=2, ge=1, le=16)  # more uploads at once get 429

    # telemetry and release
    max_reports_per_batch: int = Field(default=500, ge=1, le=500)
    daily_epsilon_budget: float = Field(default=1.0, gt=0, le=100)
    # a report labelled outside [today - report_window_days, today] (the cloud's day, service/cloud/clock.py)
    # is refused; a day is closed, and released once, when no report for it can still be accepted
    report_window_days: int = Field(default=1, ge=0, le=7)
    k_min: int = Field(default=100, ge=1)
    metrics_days: int = Field(default=2, ge=1, le=30)  # days of released estimates exported on /metrics

    # enrolment (service/cloud/enrolment.py): devices enrol only with an operator-issued enrolment token,
    # and every attempt counts against per-source and per-token limits per window (kept in the store)
    enrol_rate_window_s: int = Field(default=60, ge=1, le=3600)
    enrol_rate_per_source: int = Field(default=60, ge=1)  # attempts per window from one client address
    enrol_rate_per_token: int = Field(default=600, ge=1)  # attempts per window with one enrolment token
    max_enrolment_token_devices: int = Field(default=100_000, ge=1)  # the largest quota one token may carry
    # a device token stops working this long after it was issued; devices renew it before (POST
    # /v1/devices/{id}/token), so a stolen token is good for at most this long after its device last renewed
    device_token_ttl_s: int = Field(default=30 * 86400, ge=1, le=366 * 86400)

    def server_limits(self) -> ServerLimits:
        return ServerLimits(
            trusted_proxies=self.trusted_proxies,
            header_timeout_s=self.header_timeout_s,
            request_timeout_s=self.request_timeout_s,
        )

    @model_validator(mode="after")
    def _secrets_present(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        if token and (problem := admin_token_problem(token)):  # dev mode too: a given token is a real one
            raise ValueError(f"EIBERT_ADMIN_TOKEN {problem}")
        if token and self.admin_token_file is not None:
            raise ValueError("set EIBERT_ADMIN_TOKEN or EIBERT_ADMIN_TOKEN_FILE, not both")
        if self.dev_mode:
            return self
        if not token and self.admin_token_file is None:
            raise ValueError(
                "EIBERT_ADMIN_TOKEN is not set (set it or EIBERT_ADMIN_TOKEN_FILE, or EIBERT_CLOUD_DEV_MODE=1 for "
                "a local demo)"
            )
        if self.signing_key is None and self.signing_key_file is None:
            raise ValueError("no signing key: set EIBERT_CLOUD_SIGNING_KEY_FILE or EIBERT_CLOUD_SIGNING_KEY")
        return self

    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'cloud.db'}"
