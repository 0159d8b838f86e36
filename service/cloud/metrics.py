"""Prometheus metrics on a per-app registry (no global default registry, so each `create_app` is independent).

Request metrics are recorded by the shared middleware (`service.common.request_metrics`), labelled with the
route *template*, a standard method and a standard status code (`other` for anything else), so label
cardinality is bounded whatever clients send. Rollout state and released estimates are refreshed from the
store at scrape time, so every replica exports the shared truth, not what it happened to see.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.cloud.rollout import RolloutState
from service.cloud.schemas import ABReadoutPublic, FleetMetricPublic


class CloudMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("eibert_cloud_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "eibert_cloud_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r,
        )
        self.reports = Counter("eibert_cloud_telemetry_reports", "Telemetry reports by outcome", ["status"], registry=r)
        self.uploads = Counter("eibert_cloud_model_uploads", "Model uploads by outcome", ["outcome"], registry=r)
        self.rollout_percent = Gauge("eibert_cloud_rollout_percent", "Percent of devices on the candidate", registry=r)
        self.rollout_generation = Gauge("eibert_cloud_rollout_generation", "Rollout state generation", registry=r)
        self.rollout_version = Gauge(
            "eibert_cloud_rollout_version",
            "1 for the current stable and candidate versions",
            ["role", "version"],
            registry=r,
        )
        self.estimate = Gauge(
            "eibert_cloud_fleet_estimate",
            "Released de-biased fleet frequency and its 95% CI bounds (bound label)",
            ["metric", "model_version", "day", "category", "bound"],
            registry=r,
        )
        # released groups only: /metrics is anonymous, and an open or withheld group's existence says who reported
        self.fleet_groups = Gauge(
            "eibert_cloud_fleet_groups", "Released fleet metric groups (status=released)", ["status"], registry=r
        )
        # GET /v1/fleet/metrics's `ab`, for dashboards: each side's pooled estimate (side baseline | candidate,
        # model_version its release id) and the difference with its 95% CI (side difference, bound estimate |
        # low | high, model_version "<candidate> - <baseline>")
        self.ab = Gauge(
            "eibert_cloud_ab_readout",
            "The rollout's A/B readout over released groups (service/cloud/ab_readout.py)",
            ["metric", "category", "side", "model_version", "bound"],
            registry=r,
        )

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """What `service.common.request_metrics.RequestMetrics` reports of every HTTP request."""
        self.requests.labels(method, route, status).inc()
        self.latency.labels(route).observe(seconds)

    def set_rollout(self, state: RolloutState) -> None:
        self.rollout_percent.set(state.percent)
        self.rollout_generation.set(state.generation)
        self.rollout_version.clear()
        if state.stable:
            self.rollout_version.labels("stable", state.stable).set(1)
        if state.candidate:
            self.rollout_version.labels("candidate", state.candidate).set(1)

    def set_released(self, items: list[FleetMetricPublic]) -> None:
        """Export the released groups among `items`; open and withheld ones leave no trace, not even a count."""
        self.estimate.clear()
        released = [item for item in items if item.status == "released"]
        for item in released:
            for e in item.estimates or ():
                for bound, value in (("estimate", e.estimate), ("low", e.ci_low), ("high", e.ci_high)):
                    self.estimate.labels(item.metric, item.model_version, item.day, e.category, bound).set(value)
        self.fleet_groups.labels("released").set(len(released))

    def set_ab(self, readout: ABReadoutPublic | None) -> None:
        self.ab.clear()
        if readout is None:
            return
        for row in readout.rows:
            for side, value in (("baseline", row.baseline), ("candidate", row.candidate)):
                if value is not None:
                    self.ab.labels(row.metric, row.category, side, value.version, "estimate").set(value.estimate)
            if row.difference is None or row.ci_low is None or row.ci_high is None:
                continue
            pair = f"{readout.candidate} - {readout.baseline}"
            for bound, value in (("estimate", row.difference), ("low", row.ci_low), ("high", row.ci_high)):
                self.ab.labels(row.metric, row.category, "difference", pair, bound).set(value)
