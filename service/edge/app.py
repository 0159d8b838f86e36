"""`create_app(settings)`: the edge node as a FastAPI app.

The lifespan owns every moving part, in order: load and warm the startup bundle (a bad bundle fails startup:
better no node than one serving an unverified model), start the micro-batcher, start the model updater
(only with a cloud), start the telemetry hook; shutdown stops them in reverse. All of it lives on
`app.state.edge`, so two apps in one process (tests, benchmarks) share nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from service.edge.metrics import EdgeMetrics
from service.edge.route_docs import document_edge
from service.edge.routes import embeddings, encode, health, model, rank
from service.edge.slot import LoadedModel, ModelSlot, admitting, load_model
from service.edge.state import EdgeState
from service.edge.telemetry import LatencyTelemetry, TelemetryClient
from service.edge.updater import ModelUpdater

log = logging.getLogger(__name__)


def device_telemetry(settings: EdgeSettings, cloud_url: httpx.URL, updater: ModelUpdater) -> LatencyTelemetry:
    """This node's own LDP telemetry: the outbox lives beside the device token; the token is read from the
    updater at each flush, so reports recorded before enrolment simply wait in the outbox."""
    client = TelemetryClient(
        outbox=settings.state_dir / "telemetry.sqlite",
        cloud=httpx.Client(base_url=str(cloud_url), timeout=settings.http_timeout_s),
        token=lambda: updater.token,
        daily_budget=settings.telemetry_daily_epsilon,
    )
    return LatencyTelemetry(client, flush_interval_s=settings.telemetry_flush_s)


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
        metrics.set_model(new.version, new.manifest.name, new.encoder.model_sha256)
        if old is not None and old.key != new.key:
            cache.drop_model(old.key)

    def loader(bundle_dir) -> LoadedModel:
        return load_model(bundle_dir, threads=settings.threads, warm_up=settings.warm_up)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        first = await asyncio.to_thread(loader, settings.bundle)
        slot.swap(first)
        on_swap(first, None)
        if batcher is not None:
            batcher.start()
        own_client = None
        hook: TelemetryHook | None = None
        if settings.cloud is not None or cloud_client is not None:
            client = cloud_client
            if client is None:
                client = own_client = httpx.AsyncClient(base_url=settings.cloud, timeout=settings.http_timeout_s)
            state.updater = ModelUpdater(
                client=client,
                slot=slot,
                loader=admitting(loader, settings.admission),  # updates are trial-loaded in a child first
                public_key=settings.pinned_public_key(),
                state_dir=settings.state_dir,
                metrics=metrics,
                device_id=settings.device_id,
                enrolment_token=settings.enrolment_credential(),
                on_swap=on_swap,
                poll_interval_s=settings.poll_interval_s,
                keep_bundles=settings.keep_bundles,
                max_bundle_bytes=settings.max_bundle_bytes,
                max_metadata_age_s=settings.max_metadata_age_s,
                download_timeout_s=settings.download_timeout_s,
                reset_trust=settings.reset_trust,
            )
            state.updater.start()
        hook = telemetry
        if hook is None and state.updater is not None and settings.telemetry:
            hook = state.telemetry = device_telemetry(settings, client.base_url, state.updater)
        if hook is not None:
            await hook.start()
        log.info("edge node ready: model %s, batching %s", first.version, "on" if batcher else "off")
        state.serving = True
        try:
            yield
        finally:
            state.serving = False  # not ready from here on: a stopping node takes no new work
            if hook is not None:
                await hook.stop()
                if isinstance(hook, LatencyTelemetry) and hook is not telemetry:
                    hook.client.close()
                    hook.client.cloud.close()
            if state.updater is not None:
                await state.updater.stop()
            if own_client is not None:
                await own_client.aclose()
            if batcher is not None:
                await batcher.stop()

    app = FastAPI(title="eibert edge node", version="1", lifespan=lifespan)
    app.state.edge = state
    install_error_handlers(app)
    for router in (encode.router, embeddings.router, rank.router, model.router, health.router):
        app.include_router(router)
    document_edge(app)  # every status a route can answer, in the shared error shape
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, observe=metrics.observe_request)  # added last = outermost: times everything
    return app
