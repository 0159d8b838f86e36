"""The A/B readout of a rollout: the candidate's click rate and latency beside the baseline's, with the 95%
interval of their difference, computed only from released (k_min-gated, LDP) estimates.

Which two versions: during a canary, the candidate beside the stable version; once a version has gone to 100%,
it (now stable) beside the stable it replaced (the top of the rollout history), so the readout of the last
rollout stays visible after it completes. Each side pools its version's released groups in the response
(`service.common.ldp.pooling`); the two sides are independent, so the difference's standard error is
sqrt(se_a^2 + se_b^2). The interval is built around the unbiased difference and widened to contain the
difference of the consistent estimates that are shown (`service.common.ldp.consistent_interval`). Nothing here
reads a report or an unreleased group: it is post-processing of what is already published.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from service.cloud.rollout import RolloutState
from service.cloud.schemas import ABReadoutPublic, ABRowPublic, ABSidePublic, FleetMetricPublic
from service.common.ldp import LATENCY_BUCKETS, consistent_interval
from service.common.ldp.pooling import pool_released

# (metric, categories) an operator decides a rollout on: the click rate and the latency distribution.
READOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("top_item_clicked", ("clicked",)),
    ("latency_bucket", LATENCY_BUCKETS),
)
DIFFERENCE_BOUNDS = (-1.0, 1.0)
Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5% level, 80% power


def versions_to_compare(state: RolloutState) -> tuple[str, str, str] | None:
    """(baseline, candidate, basis), or None when there is no second version yet."""
    if state.stable and state.candidate:
        return state.stable, state.candidate, "canary"
    if state.stable and state.history:
        return state.history[-1], state.stable, "last_rollout"
    return None


def _side(
    items: Sequence[FleetMetricPublic], metric: str, category: str, version: str
) -> tuple[ABSidePublic, float] | None:
    """The pooled side, and its unbiased pooled estimate (for the interval)."""
    pooled = pool_released(i for i in items if i.metric == metric and i.model_version == version)
    if pooled is None:
        return None
    side = ABSidePublic(
        version=version,
        estimate=pooled.estimate[category],
        std_error=pooled.std_error[category],
        reports=pooled.reports,
        groups=pooled.groups,
    )
    return side, pooled.raw[category]


def ab_readout(items: Sequence[FleetMetricPublic], state: RolloutState) -> ABReadoutPublic | None:
    pair = versions_to_compare(state)
    if pair is None:
        return None
    baseline, candidate, basis = pair
    rows = []
    for metric, categories in READOUT:
        for category in categories:
            a = _side(items, metric, category, baseline)
            b = _side(items, metric, category, candidate)
            row = ABRowPublic(metric=metric, category=category, baseline=a and a[0], candidate=b and b[0])
            if a is not None and b is not None:
                (side_a, raw_a), (side_b, raw_b) = a, b
                row.difference = side_b.estimate - side_a.estimate
                se = math.hypot(side_a.std_error, side_b.std_error)
                row.ci_low, row.ci_high = consistent_interval(raw_b - raw_a, se, row.difference, DIFFERENCE_BOUNDS)
                row.min_detectable = (Z_ALPHA + Z_POWER) * se
            rows.append(row)
    return ABReadoutPublic(baseline=baseline, candidate=candidate, basis=basis, rows=rows)
