"""The released fleet metrics as `GET /v1/fleet/metrics` answers them: per-group LDP estimates that passed the
k_min gate, and the rollout's A/B readout. The cloud writes them; anyone may read them (the simulators'
summary checks them against its ground truth), so they are a shared contract, not the cloud's internals.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class EstimatePublic(BaseModel):
    category: str
    estimate: float  # consistent (Norm-Sub): >= 0, and a group's estimates sum to one
    std_error: float  # of the unbiased estimate
    ci_low: float  # 95%: the unbiased estimate's interval in [0, 1], widened to contain `estimate`
    ci_high: float
    raw_estimate: float | None = None  # unbiased (may be < 0 or > 1); None in releases stored before it existed


class FleetMetricPublic(BaseModel):
    metric: str
    model_version: str
    day: str
    status: Literal["released", "withheld", "open"]  # open: the day can still take reports, nothing shown
    devices: int | None = None  # only when released: small counts are not disclosed
    reports: int | None = None
    # sum over its reports of (p - q)^2 / (q (1 - q)): the inverse variance of its unbiased estimates at f = 0,
    # what groups are pooled by (service.common.ldp.pooling); None in releases stored before it existed
    precision: float | None = None
    estimates: list[EstimatePublic] | None = None
    reason: str | None = None


class ABSidePublic(BaseModel):
    version: str
    estimate: float  # precision-weighted mean of the released (consistent) estimates of the version's groups
    std_error: float  # of the pooled unbiased estimate
    reports: int
    groups: int


class ABRowPublic(BaseModel):
    metric: str
    category: str
    baseline: ABSidePublic | None = None  # None: no released group of that version in this response
    candidate: ABSidePublic | None = None
    difference: float | None = None  # candidate - baseline
    ci_low: float | None = None  # 95%, of the unbiased difference, widened to contain `difference`
    ci_high: float | None = None
    # The smallest true difference this readout detects with 80% power at a two-sided 5% level, from the two
    # sides' standard errors: (1.96 + 0.84) * sqrt(se_a^2 + se_b^2). A smaller effect reads as "no difference".
    min_detectable: float | None = None


class ABReadoutPublic(BaseModel):
    baseline: str
    candidate: str
    basis: Literal["canary", "last_rollout"]  # candidate beside stable, or stable beside the one it replaced
    rows: list[ABRowPublic]


class FleetMetricsPublic(BaseModel):
    k_min: int
    confidence: float = 0.95
    data: list[FleetMetricPublic]
    count: int
    ab: ABReadoutPublic | None = None  # None until a rollout has two versions to compare
