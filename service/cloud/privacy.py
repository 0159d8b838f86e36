"""The cloud side of the LDP telemetry: admit reports against the budget ledger, release closed groups once.

The cloud never sees a raw value: a report arrives already privatised (`service.common.ldp`), and is reduced
here to the categories it supports before it reaches the store. What the cloud guards, on the server's facts
only (its own day from `service.cloud.clock`, devices it enrolled), never on what a client says about itself:

- Budget: each device's epsilon is charged on the cloud's day of *receipt*, whatever day a report is labelled
  with, so at most `daily_epsilon_budget` per device per server day is accepted. It is charged on the labelled
  day as well, so the reports of one device in one day's groups never carry more than one budget either,
  although a labelled day can take reports on several server days (checked atomically with the counting, in
  the store).
- Window: a report labelled outside [today - report_window_days, today] is refused. The label only picks the
  (metric, version, day) group the report counts in, among the window's days of the server's clock.
- Integrity (issue 22): a report is accepted only under a version the cloud offered this device (recorded when
  it served the offer, `Store.record_offer`, or the one the rollout assigns it now), only at its metric's
  epsilon (`MetricSpec.default_epsilon`, the one devices encode with: any other refuses the whole batch with
  422, so no device picks a precision the estimator would have to trust), and at most once per device per
  group (a repeat is refused, in the store's atomic step). So every device carries exactly one report of known
  precision in a group it counts in, and `max_report_shift` bounds how far it can move the group's release:
  1 / (n (p - q)) for n reports.
- Ids: a report id is unique per device whatever day it carries (both stores). Ids are forgotten
  `report_window_days + 1` server days after they were accepted: a retry of a report labelled L can only be
  accepted up to server day L + window, and L is at most the day it was first accepted, so by then no retry of
  it can be accepted. An id re-used after that with a fresh label is a new report: it pays its own budget.
- Visibility: anonymous readers see released groups only; open and withheld groups (whose existence says that
  some device reported that metric under that version that day) are for the admin.
- Release: a group is released once, after its day has closed (today > day + report_window_days, so no report
  for it can be accepted any more), from at least k_min distinct enrolled devices. The first read after close
  stores the outcome (released numbers or withheld) put-if-absent, and every later read returns exactly that,
  so no two releases ever cover overlapping sets of reports: nothing can be differenced. To the admin, open
  days show status "open" and no numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from service.cloud.errors import TelemetryError
from service.cloud.rollout import assign
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
    metric_precision,
    micro_epsilon,
    support,
)

REASONS = {
    "over_budget": "over the device's daily epsilon budget",
    "not_offered": "model_version was never offered to this device",
    "repeat": "this device already has a report in this (metric, model_version, day) group",
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


def check_epsilons(reports: Sequence[TelemetryReport]) -> None:
    """TelemetryError (422, the whole batch) unless every report is at its metric's configured epsilon."""
    for r in reports:
        want = METRICS[r.metric].default_epsilon
        if micro_epsilon(r.epsilon) != micro_epsilon(want):
            raise TelemetryError(
                f"report {r.report_id}: metric {r.metric} is reported at epsilon {want:g} on this cloud, not "
                f"{r.epsilon:g}"
            )


async def offered_to(store: Store, device_id: str) -> frozenset[str]:
    """Every version the cloud served this device an offer for, and the one the rollout assigns it now (what its
    next poll is offered; it covers devices whose last 200 came before offers were recorded, which poll 304s)."""
    now = assign(await store.get_rollout(), device_id)
    return await store.offered_versions(device_id) | ({now} if now else set())


def day_window(today: dt.date, window_days: int) -> tuple[str, str]:
    """The labels accepted on server day `today`: [today - window_days, today]."""
    return (today - dt.timedelta(days=window_days)).isoformat(), today.isoformat()


def is_closed(day: str, today: dt.date, window_days: int) -> bool:
    """No report labelled `day` can be accepted any more on server day `today` (or later)."""
    return day < day_window(today, window_days)[0]


async def ingest_reports(
    *,
    store: Store,
    device_id: str,
    reports: Sequence[TelemetryReport],
    budget: float,
    window_days: int,
    today: dt.date,
) -> TelemetryAck:
    """Check what the store cannot (epsilon, window, offered version), then apply the rest in one atomic store
    call, charged on the server day `today`."""
    check_epsilons(reports)
    lo, hi = day_window(today, window_days)
    offered = await offered_to(store, device_id)
    results: list[ReportResult | None] = []
    admitted: list[PreparedReport] = []
    for r in reports:
        if not lo <= r.day <= hi:
            results.append(_refused(r, f"{REASONS['day_out_of_window']} [{lo}, {hi}] of the cloud's day"))
        elif r.model_version not in offered:
            results.append(_refused(r, REASONS["not_offered"]))
        else:
            results.append(None)
            admitted.append(prepare(r))
    outcomes = iter(
        await store.ingest(
            device_id,
            admitted,
            budget_micro=micro_epsilon(budget),
            ttl_days=window_days + 1,
            day=today.isoformat(),
        )
    )
    final: list[ReportResult] = []
    for r, res in zip(reports, results, strict=True):
        if res is not None:
            final.append(res)
            continue
        outcome = next(outcomes)
        if outcome == "over_budget":
            final.append(_refused(r, f"{REASONS['over_budget']} ({budget:g} on server day {hi})"))
        elif outcome == "repeat":
            final.append(_refused(r, REASONS["repeat"]))
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


async def published(
    store: Store,
    aggregates: Sequence[FleetAggregate],
    *,
    today: dt.date,
    window_days: int,
    k_min: int,
    admin: bool = False,
) -> list[FleetMetricPublic]:
    """What the API shows for each group: "open" while its day can still take reports; after that the stored
    release, made (put-if-absent) by the first read after close, so every later read returns exactly it.
    Only the admin sees open and withheld groups: to anyone else a group exists once it is released."""
    if not admin:
        shown = await published(store, aggregates, today=today, window_days=window_days, k_min=k_min, admin=True)
        return [item for item in shown if item.status == "released"]
    closed = [a.group.label() for a in aggregates if is_closed(a.group.day, today, window_days)]
    stored = await store.releases(closed) if closed else {}
    out: list[FleetMetricPublic] = []
    for a in aggregates:
        g = a.group
        if not is_closed(g.day, today, window_days):
            out.append(
                FleetMetricPublic(
                    metric=g.metric,
                    model_version=g.model_version,
                    day=g.day,
                    status="open",
                    reason=f"the day is still open; released once after {_closing_day(g.day, window_days)}",
                )
            )
            continue
        body = stored.get(g.label())
        if body is None:
            body = await store.put_release(g.label(), release(a, k_min).model_dump_json())
        out.append(FleetMetricPublic.model_validate_json(body))
    return out


def _closing_day(day: str, window_days: int) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=window_days)).isoformat()


def release(aggregate: FleetAggregate, k_min: int) -> FleetMetricPublic:
    """De-biased estimates with 95% CIs if at least k_min distinct devices contributed; else withheld. Only for
    closed groups, through `published`, which stores the outcome once."""
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
        precision=metric_precision(cells),
        estimates=[EstimatePublic(**vars(e)) for e in estimates],
    )
