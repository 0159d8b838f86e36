"""Building a fleet run's `FleetSummary`: read back what the cloud released and set it beside the truth.

Split from `simulators.fleet` so the run loop and its read-out can each be read on their own. Estimates are
pooled across released groups with the pooling the cloud's A/B readout uses (`service.common.ldp.pooling`), so
the summary and the cloud never disagree on how groups combine.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx
import numpy as np

from service.common.fleet_metrics import ABReadoutPublic, FleetMetricPublic
from service.common.ldp import METRICS, consistent_interval
from service.common.ldp.pooling import pool_released
from service.edge.telemetry import DEFAULT_DAILY_BUDGET
from simulators.checks import fleet_checks
from simulators.device import FleetStats, SimDevice
from simulators.faults import FaultInjector, FaultSpec
from simulators.fleet_config import FleetConfig
from simulators.summary import (
    CategoryComparison,
    EdgeNodeSummary,
    EpsilonSummary,
    FaultReport,
    FleetSummary,
    IntervalCoverage,
    LatencySummary,
    MetricComparison,
    RolloutSummary,
    TimelineEntry,
)


class FinishedFleet(Protocol):
    """What `summarize` reads of a finished `simulators.fleet.Fleet`: a Protocol, so this module does not import
    the run loop that imports it."""

    config: FleetConfig
    stats: FleetStats
    devices: list[SimDevice]
    injector: FaultInjector
    timeline: list[TimelineEntry]
    notes: list[str]
    restart_report: str | None

    def versions_now(self) -> dict[str, int]: ...


SHOWN_CATEGORIES = 5
Truth = Mapping[tuple[str, str, str], Counter[str]]  # (metric, model version, day) -> category -> count


def _round_down(x: float) -> float:
    """Interval ends are rounded outwards (4 places), so a rounded estimate never falls outside them."""
    return math.floor(x * 1e4) / 1e4


def _round_up(x: float) -> float:
    return math.ceil(x * 1e4) / 1e4


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values), q)) if values else None


def _latency(values: Sequence[float]) -> LatencySummary:
    return LatencySummary(calls=len(values), p50_ms=_percentile(values, 50), p99_ms=_percentile(values, 99))


async def read_edge_status(client: httpx.AsyncClient, url: str) -> EdgeNodeSummary:
    """What an edge node serves and how its updater is doing, from its `GET /v1/model`."""
    try:
        body = (await client.get(f"{url.rstrip('/')}/v1/model")).json()
    except (httpx.HTTPError, ValueError) as exc:
        return EdgeNodeSummary(url=url, last_error=f"unreachable: {exc}")
    update = body.get("update") or {}
    return EdgeNodeSummary(
        url=url,
        model_version=body.get("version"),
        update_state=update.get("state"),
        last_error=update.get("last_error"),
    )


async def read_rollout(plain: httpx.AsyncClient, devices: Sequence[SimDevice], following: int) -> RolloutSummary:
    """The cloud's rollout state and how far the in-process devices (those following it) have got."""
    rollout = RolloutSummary(devices_following=following)
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        r = (await plain.get("/v1/rollout")).json()
        rollout.stable, rollout.candidate, rollout.percent = r["stable"], r["candidate"], r["percent"]
    followers = [d for d in devices if d.edge is None]
    offered = Counter(d.updater.offered for d in followers if d.updater.offered)
    rollout.target_version = offered.most_common(1)[0][0] if offered else None
    rollout.devices_on_target = sum(
        1 for d in followers if d.updater.offered and d.updater.model.version == d.updater.offered
    )
    rollout.progress = rollout.devices_on_target / following if following else 0.0
    return rollout


SUM_TOLERANCE = 1e-6  # a released group's consistent estimates sum to 1 up to float rounding


def narrowest_interval(released: Sequence[FleetMetricPublic]) -> float | None:
    """The narrowest 95% interval of any released estimate, leaving out zero-width ones: an unbiased interval
    lying wholly below 0 is clipped to [0, 0], which says nothing about how much the fleet's reports pin down."""
    widths = (e.ci_high - e.ci_low for g in released for e in g.estimates or ())
    return min((w for w in widths if w > 0), default=None)


def interval_coverage(metric: str, released: Sequence[FleetMetricPublic], truth: Truth) -> IntervalCoverage:
    """Per released group and category: the interval against that group's true share, and the release's
    consistency (what the cloud promises of every released group, checked here at whatever scale was run)."""
    coverage = IntervalCoverage()
    for g in released:
        counts = truth.get((metric, g.model_version, g.day), Counter())
        n = sum(counts.values())
        estimates = g.estimates or []
        if abs(sum(e.estimate for e in estimates) - 1.0) > SUM_TOLERANCE:
            coverage.inconsistent += 1
        for e in estimates:
            coverage.inconsistent += not (0.0 <= e.estimate <= 1.0 and e.ci_low <= e.estimate <= e.ci_high)
            if n:
                coverage.intervals += 1
                coverage.covered += e.ci_low <= counts[e.category] / n <= e.ci_high
    return coverage


def compare_metric(metric: str, groups: list[dict], truth: Truth) -> MetricComparison:
    """Pool the released groups (`service.common.ldp.pooling`) and the simulation's truth over the same groups."""
    spec = METRICS[metric]
    published = [FleetMetricPublic.model_validate(g) for g in groups]
    released = [g for g in published if g.status == "released"]
    pooled = pool_released(released)
    truth_counts: Counter[str] = Counter()
    for g in released:
        truth_counts.update(truth.get((metric, g.model_version, g.day), Counter()))
    comparison = MetricComparison(
        metric=metric,
        groups_released=len(released),
        groups_withheld=sum(g.status == "withheld" for g in published),
        reports=pooled.reports if pooled else 0,
        narrowest_interval=narrowest_interval(released),
        coverage=interval_coverage(metric, released, truth),
    )
    if pooled is None:
        return comparison
    n_truth = sum(truth_counts.values()) or 1
    order = sorted(range(spec.d), key=lambda i: -truth_counts[spec.categories[i]])[:SHOWN_CATEGORIES]
    for i in order:
        category = spec.categories[i]
        est, raw = pooled.estimate.get(category, 0.0), pooled.raw.get(category, 0.0)
        lo, hi = consistent_interval(raw, pooled.std_error.get(category, 0.0), est)
        comparison.categories.append(
            CategoryComparison(
                category=category,
                estimate=round(est, 4),
                ci_low=_round_down(lo),
                ci_high=_round_up(hi),
                truth=round(truth_counts[category] / n_truth, 4),
                raw_estimate=round(raw, 4),
            )
        )
    return comparison


def fault_reports(
    spec: FaultSpec, injected: Counter[str], s: FleetStats, pending: int, restart_report: str | None
) -> list[FaultReport]:
    """One line per injected fault kind: how often it was injected and how the fleet handled it."""
    inj = injected  # a Counter: a kind never injected reads 0
    reports = []
    dropped = s.ledger.count(cause="drop")
    if spec.drop:
        reports.append(
            FaultReport(
                kind="drop",
                injected=inj["drop"],
                handled=f"{dropped} failed calls caused by it: update checks were retried the next simulated "
                f"hour and telemetry flushes ({s.flush_errors} stopped early, by any cause) kept their reports "
                f"queued in the outbox ({pending} still pending after the final flush)",
            )
        )
    if spec.delay:
        reports.append(
            FaultReport(kind="delay", injected=inj["delay"], handled="requests completed late; none timed out")
        )
    for kind in ("bitflip", "truncate"):
        if getattr(spec, kind):
            kept = ", ".join(f"{v} x {k}" for k, v in s.corrupt_kept.items()) or "n/a"
            reports.append(
                FaultReport(
                    kind=kind,
                    injected=inj[kind],
                    handled=f"rejected by verification ({s.corrupt_rejected} corrupted downloads rejected in "
                    f"all, stages {dict((k, v) for k, v in s.failures.items() if k in ('sha256', 'unpack'))}); "
                    f"the old model kept serving ({kept}); {s.corrupt_recovered} devices installed the "
                    "version at a later retry",
                )
            )
    if spec.cloud_restart:
        reports.append(
            FaultReport(
                kind="cloud-restart",
                injected=int(restart_report is not None),
                handled=restart_report or "skipped: the simulator does not own the cloud process",
            )
        )
    return reports


async def summarize(
    fleet: FinishedFleet, plain: httpx.AsyncClient, *, wall_s: float, pending: int, following: int
) -> FleetSummary:
    """The finished run's summary; read-back failures become notes, never exceptions."""
    cfg = fleet.config
    s = fleet.stats
    rollout = await read_rollout(plain, fleet.devices, following)

    estimates: list[MetricComparison] = []
    ab = None
    try:
        body = (await plain.get("/v1/fleet/metrics", params={"limit": 1000})).json()
        released = body["data"]
        ab = ABReadoutPublic.model_validate(body["ab"]) if body.get("ab") else None
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        fleet.notes.append(f"could not read /v1/fleet/metrics: {exc}")
        released = []
    for metric in METRICS:
        estimates.append(compare_metric(metric, [g for g in released if g["metric"] == metric], s.truth))

    edge_nodes = [await read_edge_status(plain, url) for url in cfg.edge_urls]
    spent_totals = [sum(d.spent.values()) for d in fleet.devices]
    day_max = max((v for d in fleet.devices for v in d.spent.values()), default=0.0)
    requests = {k: v for k, v in fleet.injector.requests.items()}
    requests["rank"] = s.sessions
    latency = {
        "all": _latency(s.latencies["in_process"] + s.latencies["http"]),
        "in_process": _latency(s.latencies["in_process"]),
        "http": _latency(s.latencies["http"]),
    }
    if s.skipped_version:  # before the summary is built: it copies the notes
        fleet.notes.append(f"{s.skipped_version} telemetry values not recorded: the device's version was unknown")
    summary = FleetSummary(
        devices=len(fleet.devices),
        in_process_devices=following,
        http_devices=len(fleet.devices) - following,
        enrolled=sum(d.updater.token is not None for d in fleet.devices),
        simulated_days=cfg.days,
        wall_s=round(wall_s, 2),
        requests=dict(sorted(requests.items())),
        sessions=s.sessions,
        impressions=s.impressions,
        clicks=s.clicks,
        top_click_rate=s.top_clicks / s.sessions if s.sessions else 0.0,
        latency=latency,
        versions=fleet.versions_now(),
        rollout=rollout,
        fleet_estimates=estimates,
        ab=ab,
        telemetry=s.telemetry.model_copy(update={"pending": pending}),
        epsilon=EpsilonSummary(
            daily_budget=DEFAULT_DAILY_BUDGET,
            per_device_day_max=round(day_max, 4),
            per_device_total_mean=round(float(np.mean(spent_totals)), 4) if spent_totals else 0.0,
            per_device_total_max=round(max(spent_totals, default=0.0), 4),
        ),
        faults=fault_reports(cfg.faults, fleet.injector.injected, s, pending, fleet.restart_report),
        failures=s.ledger.summary(),
        rejected_downloads={k: v for k, v in s.failures.items() if k in ("sha256", "unpack", "manifest")},
        edge_nodes=edge_nodes,
        timeline=fleet.timeline,
        notes=fleet.notes,
    )
    summary.checks = fleet_checks(summary)
    return summary
