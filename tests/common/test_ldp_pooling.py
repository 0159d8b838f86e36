"""Pooling released groups (service/common/ldp/pooling.py): by precision, the inverse variance each release states."""

from __future__ import annotations

import pytest

from service.common.fleet_metrics import EstimatePublic, FleetMetricPublic
from service.common.ldp.pooling import pool_released


def group(day: str, clicked: float, *, reports: int, precision: float | None, se: float = 0.1) -> FleetMetricPublic:
    return FleetMetricPublic(
        metric="top_item_clicked",
        model_version="m-1",
        day=day,
        status="released",
        devices=reports,
        reports=reports,
        precision=precision,
        estimates=[
            EstimatePublic(category=c, estimate=v, std_error=se, ci_low=0.0, ci_high=1.0, raw_estimate=v)
            for c, v in (("clicked", clicked), ("not_clicked", 1 - clicked))
        ],
    )


def test_groups_pool_by_precision_not_by_report_count() -> None:
    """A group of many imprecise reports (50 at a tiny epsilon) must not outweigh a precise one (40 reports)."""
    precise = group("2026-01-01", 0.12, reports=40, precision=40 * 0.157)
    vague = group("2026-01-02", 1.0, reports=50, precision=50 * 1e-4, se=50.0)
    pooled = pool_released([precise, vague])
    assert pooled is not None and pooled.reports == 90 and pooled.groups == 2
    w = (40 * 0.157, 50 * 1e-4)
    assert pooled.estimate["clicked"] == pytest.approx((w[0] * 0.12 + w[1] * 1.0) / sum(w))
    assert pooled.estimate["clicked"] < 0.13  # by report count: (40 x 0.12 + 50 x 1.0) / 90 = 0.61
    assert pooled.std_error["clicked"] == pytest.approx(((w[0] * 0.1) ** 2 + (w[1] * 50.0) ** 2) ** 0.5 / sum(w))


def test_releases_stored_before_precision_pool_by_reports_all_together() -> None:
    old = group("2026-01-01", 0.2, reports=30, precision=None)
    new = group("2026-01-02", 0.4, reports=10, precision=1.0)
    pooled = pool_released([old, new])
    assert pooled is not None and pooled.estimate["clicked"] == pytest.approx((30 * 0.2 + 10 * 0.4) / 40)
    assert pool_released([group("2026-01-03", 0.5, reports=0, precision=0.0)]) is None
