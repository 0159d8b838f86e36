"""Prometheus metrics of one edge app, in the app's own registry (two apps in one process never share counts).

Requests are timed by the shared middleware (`service.common.request_metrics`), whose labels come from fixed
sets, into `request_seconds` here.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class EdgeMetrics:
    """Every metric the edge exports; update helpers keep label handling in one place."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram(
            "eibert_edge_request_seconds", "HTTP request latency", ["route", "method", "status"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "eibert_edge_batch_size", "texts per onnxruntime batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.cache_hits = Counter("eibert_edge_cache_hits_total", "embedding cache hits", registry=r)
        self.cache_misses = Counter("eibert_edge_cache_misses_total", "embedding cache misses", registry=r)
        self.model_info = Gauge(
            "eibert_edge_model_info", "the model serving now (value 1)", ["model_version", "name", "sha256"], registry=r
        )
        self.load_failures = Counter(
            "eibert_edge_model_load_failures_total", "model updates that failed, by stage", ["stage"], registry=r
        )
        self.model_swaps = Counter("eibert_edge_model_swaps_total", "models swapped in", registry=r)
        self.update_checks = Counter(
            "eibert_edge_update_checks_total", "update polls by outcome", ["outcome"], registry=r
        )
        # Read at scrape time (the updater sets their functions): a frozen cloud stops the polls' news, not these.
        self.update_metadata_age = Gauge(
            "eibert_edge_update_metadata_age_seconds", "age of the newest valid signed offer held", registry=r
        )
        self.update_stale = Gauge(
            "eibert_edge_update_stale", "1 if that offer is older than max_metadata_age_s or expired", registry=r
        )

    def set_model(self, release_id: str, name: str, sha256: str) -> None:
        """Exactly one model_info series at a time: the serving model. `model_version` is its release id, the
        same label (and value) the cloud's fleet estimates carry."""
        self.model_info.clear()
        self.model_info.labels(model_version=release_id, name=name, sha256=sha256[:12]).set(1)

    def observe_request(self, route: str, method: str, status: str, seconds: float) -> None:
        """What `service.common.request_metrics.RequestMetrics` reports of every HTTP request."""
        self.request_seconds.labels(route=route, method=method, status=status).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
