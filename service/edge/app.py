"""`create_app(settings)`: the edge node as a FastAPI app.

The lifespan starts every moving part in order and stops them in reverse (`service/edge/lifecycle.py`). All of
it lives on `app.state.edge`, so two apps in one process (tests, benchmarks) share nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from service.common.body_limit import BodyLimit
from service.common.request_metrics import RequestMetrics
from service.edge.batching import MicroBatcher
from service.edge.cache import EmbeddingCache
from service.edge.config import EdgeSettings
from service.edge.embedder import Embedder, encode_batch
from service.edge.error_handlers import install_error_handlers
from service.edge.hooks import TelemetryHook
from service.edge.lean import LeanRoutes
from service.edge.lifecycle import EdgeLifecycle
from service.edge.metrics import EdgeMetrics
from service.edge.openai_errors import OpenAIErrors, install_openai_refusals
from service.edge.route_docs import document_edge
from service.edge.routes import embeddings, encode, health, model, rank
from service.edge.slot import LoadedModel, ModelSlot, load_model
from service.edge.state import EdgeState


def create_app(
    settings: EdgeSettings,
    *,
    cloud_client: httpx.AsyncClient | None = None,
    telemetry: TelemetryHook | None = None,
) -> FastAPI:
    """Build the app; `cloud_client` (base_url = the cloud) replaces the one built from `settings.cloud`."""
    metrics = EdgeMetrics()

    def run_inline(model: LoadedModel, texts: list[str]) -> bool:
        return len(texts) * model.short_text_ms <= settings.inline_budget_ms

    cache = EmbeddingCache(
        settings.cache_size,
        max_bytes=settings.cache_max_bytes,
        on_hits=metrics.cache_hits.inc,
        on_misses=metrics.cache_misses.inc,
    )
    batcher = (
        MicroBatcher(
            encode_batch,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            on_batch=metrics.batch_size.observe,
            inline=run_inline,
            workers=settings.batch_workers,
            name="encode-batcher",
        )
        if settings.batching
        else None
    )
    slot = ModelSlot()
    state = EdgeState(
        settings=settings,
        metrics=metrics,
        slot=slot,
        cache=cache,
        embedder=Embedder(cache, batcher, metrics, inline=run_inline, max_pending_chars=settings.max_pending_chars),
        batcher=batcher,
        telemetry=telemetry,
    )

    def on_swap(new: LoadedModel, old: LoadedModel | None) -> None:
        metrics.set_model(new.release_id, new.manifest.name, new.encoder.model_sha256)
        if old is not None and old.key != new.key:
            cache.drop_model(old.key)

    def loader(bundle_dir: Path) -> LoadedModel:
        return load_model(bundle_dir, threads=settings.threads, warm_up=settings.warm_up)

    life = EdgeLifecycle(settings, state, loader, on_swap, cloud_client=cloud_client, telemetry=telemetry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await life.start()
        try:
            yield
        finally:
            await life.stop()

    app = FastAPI(title="eibert edge node", version="1", lifespan=lifespan)
    app.state.edge = state
    install_error_handlers(app)
    install_openai_refusals(app)
    for router in (encode.router, embeddings.router, rank.router, model.router, health.router):
        app.include_router(router)
    document_edge(app)  # every status a route can answer, in the shared error shape
    # innermost: the hot POSTs skip the framework's routing and request handling (inside the body limit and
    # the request metrics, which still bound and time them)
    app.add_middleware(LeanRoutes, fastapi_app=app, routes=[encode.LEAN, embeddings.LEAN])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(OpenAIErrors)  # outside the body limit: /v1/embeddings answers every error OpenAI's way
    app.add_middleware(RequestMetrics, observe=metrics.observe_request)  # added last = outermost: times everything
    return app
