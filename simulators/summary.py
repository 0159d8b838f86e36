"""What a fleet run reports: a pydantic model (the `--summary-json` contract) and its text rendering."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from service.common.fleet_metrics import ABReadoutPublic
from simulators.failures import FailureSummary


class LatencySummary(BaseModel):
    calls: int
    p50_ms: float | None = None
    p99_ms: float | None = None


class RolloutSummary(BaseModel):
    stable: str | None = None  # the cloud's view at the end (GET /v1/rollout)
    candidate: str | None = None
    percent: int = 0
    target_version: str | None = None  # what the cloud asked the most devices to run at their last poll
    devices_following: int = 0  # in-process devices (they follow rollouts themselves)
    devices_on_target: int = 0  # of those, devices serving what the cloud last offered them
    progress: float = 0.0  # devices_on_target / devices_following


class CategoryComparison(BaseModel):
    category: str
    estimate: float  # pooled (report-weighted) over the released, consistent estimates of GET /v1/fleet/metrics
    ci_low: float  # 95%, of the pooled unbiased estimate, widened to contain `estimate`
    ci_high: float
    truth: float  # the same share among the raw values the simulated devices privatised
    raw_estimate: float | None = None  # pooled unbiased estimate (may fall outside [0, 1])


class IntervalCoverage(BaseModel):
    """Every category of every released group: does its 95% interval hold that group's true share, and is the
    release consistent (each estimate in [0, 1] and inside its interval, the group's estimates summing to 1)?"""

    intervals: int = 0
    covered: int = 0  # intervals holding the share among the raw values the devices privatised in that group
    inconsistent: int = 0  # released estimates outside their interval or [0, 1], plus groups not summing to 1

    @property
    def share(self) -> float | None:
        return self.covered / self.intervals if self.intervals else None


class MetricComparison(BaseModel):
    metric: str
    groups_released: int
    groups_withheld: int
    reports: int  # in the released groups
    narrowest_interval: float | None = None  # narrowest 95% interval of any released estimate (zero-width left out)
    categories: list[CategoryComparison] = Field(default_factory=list)
    coverage: IntervalCoverage = Field(default_factory=IntervalCoverage)


class TelemetrySummary(BaseModel):
    recorded: int = 0  # reports privatised into the device outboxes
    skipped_budget: int = 0  # values not recorded: the day's epsilon budget was spent
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    pending: int = 0  # still in outboxes after the final flush


class EpsilonSummary(BaseModel):
    daily_budget: float
    per_device_day_max: float
    per_device_total_mean: float
    per_device_total_max: float


class FaultReport(BaseModel):
    kind: str
    injected: int
    handled: str


class EdgeNodeSummary(BaseModel):
    url: str
    model_version: str | None = None
    update_state: str | None = None
    last_error: str | None = None


class TimelineEntry(BaseModel):
    hour: int
    text: str
    versions: dict[str, int] = Field(default_factory=dict)


class PositionBiasResult(BaseModel):
    """What the experiment measured: one JSON line of `eibert sim position-bias`, a section of the demo's."""

    users: int
    days: int
    seed: int
    bundle: str  # release id of the encoder that embedded the pool
    sessions: int  # per learner (they share every session)
    ndcg_at_10: dict[str, float]  # learner -> mean NDCG@10 of the last day's served slates
    ndcg_at_10_all_days: dict[str, float]  # learner -> over every day (day 0 is today's ranker for all)
    ratio: float  # ndcg_at_10["personal"] / ndcg_at_10["naive"]
    curve_error: dict[str, float | None]  # estimate -> mean over users of the mean |estimate - truth|, slots 1-9
    curve_error_by_style: dict[str, dict[str, float | None]]  # skim | deep | typical -> estimate -> error
    users_by_style: dict[str, int]
    click_rate_undefined: int  # users whose click-rate curve is undefined (no click in slot 0): left out of it
    wall_s: float


class FleetSummary(BaseModel):
    devices: int
    in_process_devices: int
    http_devices: int
    enrolled: int
    simulated_days: int
    wall_s: float
    requests: dict[str, int]  # by route: rank, enrol, poll, download, telemetry, other
    sessions: int
    impressions: int = 0  # items shown, each logged on the device with its slot
    clicks: int
    top_click_rate: float  # sessions whose top-ranked item was clicked
    latency: dict[str, LatencySummary]  # all, in_process, http
    versions: dict[str, int]  # version serving on each device at the end (sums to `devices`)
    rollout: RolloutSummary
    fleet_estimates: list[MetricComparison]
    ab: ABReadoutPublic | None = None  # the rollout's A/B readout, as GET /v1/fleet/metrics released it
    telemetry: TelemetrySummary
    epsilon: EpsilonSummary
    faults: list[FaultReport]
    failures: FailureSummary = Field(default_factory=FailureSummary)  # every failed call, by cause
    rejected_downloads: dict[str, int]  # failure stage -> count, for downloads refused by verification
    edge_nodes: list[EdgeNodeSummary] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    checks: dict[str, bool] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    position_bias: PositionBiasResult | None = None  # the demo's naive-vs-corrected experiment, when it ran


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _side(side) -> str:  # ABSidePublic | None
    return "   n/a" if side is None else f"{side.estimate:6.3f}"


def render_ab(ab: ABReadoutPublic | None) -> list[str]:
    """The rollout's readout: the candidate beside the baseline, and the difference with its 95% interval."""
    if ab is None:
        return ["a/b readout    none: the rollout has not had two versions"]
    basis = "canary beside stable" if ab.basis == "canary" else "last rollout beside the version it replaced"
    lines = [f"a/b readout    {ab.candidate} vs {ab.baseline} ({basis}; released estimates only)"]
    for r in ab.rows:
        diff = (
            "difference n/a (no released group on one side)"
            if r.difference is None
            else f"difference {r.difference:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            + (f", detects >= {r.min_detectable:.3f}" if r.min_detectable is not None else "")
        )
        lines.append(
            f"                 {r.metric} {r.category:<12} {_side(r.candidate)} vs {_side(r.baseline)}  {diff}"
        )
    return lines


POSITION_TARGET = 1.05  # issue 21: the corrected learner's NDCG@10 against the naive one's


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_position_bias(p: PositionBiasResult | None) -> list[str]:
    """The naive-vs-corrected experiment: NDCG@10 of served slates against the truth, and curve errors."""
    if p is None:
        return []
    n = p.ndcg_at_10
    others = "".join(f", {k} {v:.3f}" for k, v in n.items() if k not in ("naive", "personal"))
    verdict = "met" if p.ratio >= POSITION_TARGET else "missed"
    e = p.curve_error
    return [
        f"position bias  NDCG@10 of served slates vs true relevance after {p.days} simulated days ({p.users} users, "
        f"{p.sessions} sessions each, {p.wall_s:.0f} s): naive {n['naive']:.3f}, corrected with personal curves "
        f"{n['personal']:.3f} = {p.ratio:.3f}x (target {POSITION_TARGET}x: {verdict}){others}",
        f"               examination-curve error per user (mean |estimate - truth|, slots 1-9): personal "
        f"{_num(e.get('personal'))}, fleet curve {_num(e.get('fleet'))}, "
        f"click rate by slot {_num(e.get('click_rate'))}",
    ]


def render(s: FleetSummary) -> str:
    """The human-readable summary printed at the end of `eibert simulate` and `eibert demo`."""
    lines = [
        "== fleet summary ==",
        f"devices        {s.devices} ({s.in_process_devices} in-process, {s.http_devices} via edge nodes), "
        f"{s.enrolled} enrolled; {s.simulated_days} simulated days in {s.wall_s:.1f} s",
        "requests       " + ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items())),
        f"sessions       {s.sessions}, impressions {s.impressions}, clicks {s.clicks}, "
        f"top item clicked in {_pct(s.top_click_rate)} of sessions",
    ]
    for name, lat in s.latency.items():
        if lat.calls:
            lines.append(
                f"rank latency   {name:<10} {lat.calls:>6} calls  p50 {lat.p50_ms:.2f} ms  p99 {lat.p99_ms:.2f} ms"
            )
    lines.append("versions       " + ", ".join(f"{v}: {n}" for v, n in sorted(s.versions.items())))
    r = s.rollout
    lines.append(
        f"rollout        cloud: stable {r.stable}, candidate {r.candidate} at {r.percent}%; "
        f"{r.devices_on_target}/{r.devices_following} devices on what they were offered ({_pct(r.progress)})"
    )
    for m in s.fleet_estimates:
        lines.append(
            f"fleet metric   {m.metric}: {m.groups_released} groups released ({m.reports} reports), "
            f"{m.groups_withheld} withheld"
            + ("" if m.narrowest_interval is None else f"; narrowest released interval {m.narrowest_interval:.3f}")
            + (
                ""
                if m.coverage.share is None
                else f"; intervals covering the truth {_pct(m.coverage.share).strip()} "
                f"({m.coverage.covered}/{m.coverage.intervals}), inconsistent {m.coverage.inconsistent}"
            )
        )
        for c in m.categories:
            lines.append(
                f"                 {c.category:<20} estimate {c.estimate:6.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]"
                f"  truth {c.truth:6.3f}"
            )
    lines.extend(render_ab(s.ab))
    t = s.telemetry
    lines.append(
        f"telemetry      recorded {t.recorded} (skipped over budget {t.skipped_budget}); accepted {t.accepted}, "
        f"duplicate {t.duplicate}, refused {t.refused}, pending {t.pending}"
    )
    e = s.epsilon
    lines.append(
        f"epsilon        daily budget {e.daily_budget:g}; per device-day max {e.per_device_day_max:.2f}; "
        f"per device total mean {e.per_device_total_mean:.2f}, max {e.per_device_total_max:.2f}"
    )
    for f in s.faults:
        lines.append(f"fault          {f.kind}: injected {f.injected}; {f.handled}")
    for call, causes in s.failures.by_call.items():
        lines.append(f"failed calls   {call}: " + ", ".join(f"{k} {v}" for k, v in sorted(causes.items())))
    lines.extend(f"unexplained    {x}" for x in s.failures.unexplained_examples)
    lines.append(f"unexplained failures: {s.failures.unexplained}")
    if s.rejected_downloads:
        lines.append("rejected       " + ", ".join(f"{k} {v}" for k, v in sorted(s.rejected_downloads.items())))
    for n in s.edge_nodes:
        extra = f" (last error: {n.last_error})" if n.last_error else ""
        lines.append(f"edge node      {n.url}: serving {n.model_version}, updater {n.update_state}{extra}")
    lines.extend(render_position_bias(s.position_bias))
    for name, ok in s.checks.items():
        lines.append(f"check          {'PASS' if ok else 'FAIL'}  {name}")
    lines.extend(f"note           {n}" for n in s.notes)
    return "\n".join(lines)


def write_summary(summary: FleetSummary, path: str | Path | None) -> None:
    """The summary as JSON at `path` (`--summary-json`, the demo's `summary.json`); nothing when no path."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
