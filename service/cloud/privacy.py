"""The cloud side of the LDP telemetry: admit reports against the budget ledger, release k_min-gated estimates.

The cloud never sees a raw value: a report arrives already privatised (`service.common.ldp`), and is reduced
here to the categories it supports before it reaches the store. What the cloud does guard:
- the per-device, per-day epsilon budget (the ledger in the store, checked atomically with the counting);
- freshness: only days in [today - max_report_age_days, today + 1] are accepted, so report-id memory can
  expire without ever double counting;
- release: an estimate is published only when at least k_min distinct devices contributed to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence

from service.cloud.schemas import EstimatePublic, FleetMetricPublic
from service.cloud.store import FleetAggregate, GroupKey, PreparedReport, Store
from service.common.ldp import (
    METRICS,
    CellCounts,
    ReportResult,
    TelemetryAck,
    TelemetryReport,
    epsilon_label,
    estimate_metric,
    micro_epsilon,
    support,
)

REASONS = {
    "over_budget": "over the device's daily epsilon budget",
    "unknown_model_version": "model_version is not a registered version",
    "day_out_of_window": "day is outside the accepted window",
}


def prepare(report: TelemetryReport) -> PreparedReport:
    return PreparedReport(
        report_id=str(report.report_id),
        group=GroupKey(report.metric, report.model_version, report.day),
        mechanism=report.mechanism,
        epsilon_label=epsilon_label(report.epsilon),
        cost_micro=micro_epsilon(report.epsilon),
        support=support(report),
    )


def day_window(today: dt.date, max_age_days: int) -> tuple[str, str]:
    return (today - dt.timedelta(days=max_age_days)).isoformat(), (today + dt.timedelta(days=1)).isoformat()


async def ingest_reports(
    *,
    store: Store,
    device_id: str,
    reports: Sequence[TelemetryReport],
    is_known_version: Callable[[str], Awaitable[bool]],
    budget: float,
    max_age_days: int,
    today: dt.date,
) -> TelemetryAck:
    """Check what the store cannot (freshness, version), then apply the rest in one atomic store call."""
    lo, hi = day_window(today, max_age_days)
    results: list[ReportResult | None] = []
    admitted: list[PreparedReport] = []
    for r in reports:
        if not lo <= r.day <= hi:
            results.append(_refused(r, f"{REASONS['day_out_of_window']} [{lo}, {hi}]"))
        elif not await is_known_version(r.model_version):
            results.append(_refused(r, REASONS["unknown_model_version"]))
        else:
            results.append(None)
            admitted.append(prepare(r))
    outcomes = iter(
        await store.ingest(device_id, admitted, budget_micro=micro_epsilon(budget), ttl_days=max_age_days + 1)
    )
    final: list[ReportResult] = []
    for r, res in zip(reports, results, strict=True):
        if res is not None:
            final.append(res)
            continue
        outcome = next(outcomes)
        if outcome == "over_budget":
            final.append(_refused(r, f"{REASONS['over_budget']} ({budget:g})"))
        else:
            final.append(ReportResult(report_id=str(r.report_id), status=outcome))
    return TelemetryAck(
        results=final,
        accepted=sum(x.status == "accepted" for x in final),
        duplicate=sum(x.status == "duplicate" for x in final),
        refused=sum(x.status == "refused" for x in final),
    )


def _refused(r: TelemetryReport, reason: str) -> ReportResult:
    return ReportResult(report_id=str(r.report_id), status="refused", reason=reason)


def release(aggregate: FleetAggregate, k_min: int) -> FleetMetricPublic:
    """De-biased estimates with 95% CIs if at least k_min distinct devices contributed; else withheld."""
    g = aggregate.group
    base = {"metric": g.metric, "model_version": g.model_version, "day": g.day}
    spec = METRICS.get(g.metric)
    if spec is None:  # pragma: no cover - the schema only admits known metrics
        return FleetMetricPublic(**base, status="withheld", reason="unknown metric")
    if aggregate.devices < k_min:
        return FleetMetricPublic(**base, status="withheld", reason=f"fewer than k_min={k_min} distinct devices")
    cells = [
        CellCounts(
            mechanism=c.mechanism,  # type: ignore[arg-type]
            epsilon=float(c.epsilon_label),
            n=c.n,
            counts=tuple(c.counts.get(i, 0) for i in range(spec.d)),
        )
        for c in aggregate.cells
    ]
    estimates = estimate_metric(spec, cells)
    return FleetMetricPublic(
        **base,
        status="released",
        devices=aggregate.devices,
        reports=sum(c.n for c in cells),
        estimates=[EstimatePublic(**vars(e)) for e in estimates],
    )
