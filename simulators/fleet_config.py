"""`FleetConfig`: what one fleet run is asked to do. Its own module so the run (`simulators.fleet`) and its
read-out (`simulators.fleet_summary`) both depend on it, not on each other."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from simulators.faults import FaultSpec


class FleetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cloud_url: str
    bundle: Path  # the bundle in-process devices start with (their factory install)
    edge_urls: list[str] = Field(default_factory=list)
    edge_devices: int | None = Field(default=None, ge=0)  # devices ranking via edge nodes; None = all if edge_urls
    devices: int = Field(default=200, ge=1)
    days: int = Field(default=3, ge=1)
    seed: int = 0
    faults: FaultSpec = Field(default_factory=FaultSpec)
    cloud_public_key: str | None = None  # base64 raw Ed25519; None = GET /v1/signing-key once at start
    state_dir: Path | None = None  # None = a temporary directory, removed at the end
    poll_hours: int = Field(default=6, ge=1, le=24)
    top_k: int = Field(default=10, ge=1)
    slate: int = Field(default=20, ge=2)
    data_root: Path | None = None
    # device ids are sim-<run_id>-<n>; None = random, so two runs against one cloud never collide
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]{1,16}$")
    admin_token: str | None = None  # issues the fleet's enrolment token and advances a dev-mode cloud's clock
    enrolment_token: str | None = None  # an operator-issued one to use instead of issuing one
