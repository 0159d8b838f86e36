"""The summary's reading of released groups: interval coverage over the simulation's truth, the consistency the
cloud promises (estimates in [0, 1], inside their intervals, summing to 1), and the narrowest interval."""

from __future__ import annotations

from collections import Counter

import pytest

from service.cloud.schemas import EstimatePublic, FleetMetricPublic
from simulators.fleet_summary import interval_coverage, narrowest_interval


def _group(day: str, *estimates: tuple[str, float, float, float]) -> FleetMetricPublic:
    return FleetMetricPublic(
        metric="top_item_clicked",
        model_version="v1",
        day=day,
        status="released",
        devices=100,
        reports=100,
        estimates=[
            EstimatePublic(category=c, estimate=e, std_error=0.1, ci_low=lo, ci_high=hi) for c, e, lo, hi in estimates
        ],
    )


TRUTH = {
    ("top_item_clicked", "v1", "2026-01-01"): Counter(clicked=70, not_clicked=30),
    ("top_item_clicked", "v1", "2026-01-02"): Counter(clicked=50, not_clicked=50),
}


def test_coverage_counts_each_category_of_each_group_against_that_groups_truth() -> None:
    groups = [
        _group("2026-01-01", ("clicked", 0.72, 0.6, 0.8), ("not_clicked", 0.28, 0.2, 0.4)),  # both cover
        _group("2026-01-02", ("clicked", 0.7, 0.6, 0.8), ("not_clicked", 0.3, 0.2, 0.4)),  # 0.5 in neither
    ]
    cov = interval_coverage("top_item_clicked", groups, TRUTH)
    assert (cov.intervals, cov.covered, cov.inconsistent, cov.share) == (4, 2, 0, 0.5)


def test_a_group_without_truth_is_not_counted() -> None:
    cov = interval_coverage("top_item_clicked", [_group("2026-01-09", ("clicked", 1.0, 0.9, 1.0))], TRUTH)
    assert (cov.intervals, cov.share) == (0, None)


def test_inconsistent_releases_are_counted() -> None:
    outside = _group("2026-01-01", ("clicked", 0.9, 0.6, 0.8), ("not_clicked", 0.1, 0.0, 0.4))
    negative = _group("2026-01-01", ("clicked", 1.1, 0.6, 1.2), ("not_clicked", -0.1, -0.2, 0.4))
    not_one = _group("2026-01-01", ("clicked", 0.7, 0.6, 0.8), ("not_clicked", 0.2, 0.1, 0.4))
    assert interval_coverage("top_item_clicked", [outside], TRUTH).inconsistent == 1
    assert interval_coverage("top_item_clicked", [negative], TRUTH).inconsistent == 2  # both out of [0, 1]
    assert interval_coverage("top_item_clicked", [not_one], TRUTH).inconsistent == 1


def test_the_narrowest_interval_leaves_out_zero_width_ones() -> None:
    """[0, 0] is what clipping makes of an unbiased interval wholly below 0: it pins nothing down."""
    g = _group("2026-01-01", ("clicked", 1.0, 0.85, 1.0), ("not_clicked", 0.0, 0.0, 0.0))
    assert narrowest_interval([g]) == pytest.approx(0.15)
    assert narrowest_interval([_group("2026-01-01", ("clicked", 0.0, 0.0, 0.0))]) is None
    assert narrowest_interval([]) is None
