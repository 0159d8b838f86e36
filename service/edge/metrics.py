"""Prometheus metrics of one edge app, in the app's own registry (two apps in one process never share counts).

Request labels come from fixed sets (route templates such as `/v1/encode`, never raw paths; standard methods
and status codes, else `other`), so a scanner cannot explode cardinality.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.common.http_labels import method_label, status_label

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UNMATCHED = "unmatched"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


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
            "eibert_edge_model_info", "the model serving now (value 1)", ["version", "name", "sha256"], registry=r
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

    def set_model(self, version: str, name: str, sha256: str) -> None:
        """Exactly one model_info series at a time: the serving model."""
        self.model_info.clear()
        self.model_info.labels(version=version, name=name, sha256=sha256[:12]).set(1)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware): times every HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: EdgeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or UNMATCHED
            labels = {"route": path, "method": method_label(scope.get("method")), "status": status_label(status)}
            self.metrics.request_seconds.labels(**labels).observe(time.perf_counter() - start)
