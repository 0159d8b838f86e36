"""Pooling released fleet estimates across groups: what the A/B readout and the simulator's summary both read.

Groups of one metric are disjoint sets of reports, so a pooled estimate is the precision-weighted mean of the
groups' estimates (each group's `precision`, the inverse of its variance at f = 0, which depends on its reports'
mechanisms and epsilons, not on their values; if a release stored before that field existed is among them, all
weigh by their report counts, as they did then),
and its variance is sum(w_g^2 se_g^2) / W^2. The consistent estimates pool to a consistent
one (a weighted mean of points on the simplex stays on it); the unbiased ones (`raw_estimate`, which a release
stored before it existed lacks: its `estimate` is then the unbiased one) pool to the unbiased centre of an
interval. Only released groups count: this is post-processing of what is already published.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from service.common.fleet_metrics import FleetMetricPublic


@dataclass(frozen=True)
class Pooled:
    estimate: dict[str, float]  # by category: pooled consistent estimate
    raw: dict[str, float]  # pooled unbiased estimate
    std_error: dict[str, float]  # of the pooled unbiased estimate
    reports: int
    groups: int


def pool_released(items: Iterable[FleetMetricPublic]) -> Pooled | None:
    """The released groups among `items`, pooled by precision; None when none of them holds a report."""
    released = [g for g in items if g.status == "released" and g.reports]
    if not released:
        return None
    by_precision = all(g.precision is not None for g in released)
    weights = [float(g.precision if by_precision else g.reports or 0) for g in released]  # type: ignore[arg-type]
    total = sum(weights)
    est: defaultdict[str, float] = defaultdict(float)
    raw: defaultdict[str, float] = defaultdict(float)
    var: defaultdict[str, float] = defaultdict(float)
    for g, n in zip(released, weights, strict=True):
        for e in g.estimates or ():
            est[e.category] += n * e.estimate
            raw[e.category] += n * (e.estimate if e.raw_estimate is None else e.raw_estimate)
            var[e.category] += (n * e.std_error) ** 2
    return Pooled(
        estimate={c: v / total for c, v in est.items()},
        raw={c: v / total for c, v in raw.items()},
        std_error={c: math.sqrt(v) / total for c, v in var.items()},
        reports=sum(g.reports or 0 for g in released),
        groups=len(released),
    )
