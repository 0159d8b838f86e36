"""`create_app(settings)`: the cloud API. Resources (store, keys, registry) are made in the lifespan, from the
settings passed in, and closed on shutdown; nothing is created at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.cloud.blobs import BlobStore
from service.cloud.clock import CloudClock, claim_store
from service.cloud.config import Settings
from service.cloud.deps import CloudContext
from service.cloud.errors import install_error_handlers
from service.cloud.keys import check_signing_key, load_admin_token, load_signing_key
from service.cloud.metrics import CloudMetrics
from service.cloud.registry import Registry
from service.cloud.route_docs import document_cloud
from service.cloud.routes import ROUTERS
from service.cloud.store import make_store
from service.common.body_limit import BodyLimit
from service.common.request_metrics import RequestMetrics

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    metrics = CloudMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_store_url()
        store = make_store(
            url, redis_prefix=settings.redis_prefix, require_durable_redis=settings.require_durable_redis
        )
        await store.open()
        try:
            await claim_store(store, dev_mode=settings.dev_mode, deployment=settings.deployment)
            key = load_signing_key(settings)
            registry = Registry(
                store=store,
                blobs=BlobStore(store, settings.data_dir / "blobs"),  # only a cache: blobs live in the store
                key=key,
                max_model_bytes=settings.max_model_bytes,
                offer_ttl_s=settings.offer_ttl_s,
                tmp_root=settings.data_dir / "tmp",
                admission=settings.admission,
                max_concurrent_admissions=settings.max_concurrent_admissions,
                deployment=settings.deployment,
            )
            await check_signing_key(store, registry.public_key)
            app.state.ctx = CloudContext(
                settings=settings,
                store=store,
                registry=registry,
                metrics=metrics,
                admin_token=load_admin_token(settings),
                clock=CloudClock(store, advanceable=settings.dev_mode),
            )
            log.info("cloud ready: store %s (%s)", url.split("@")[-1], await store.durability())
            if settings.dev_mode:  # a demo's compressed days must never be mistaken for production's
                log.warning(
                    "DEV MODE: an admin may advance this cloud's day (POST /v1/clock; GET /v1/clock says "
                    "advanceable), so simulated days pass in seconds; never run production like this"
                )
            yield
        finally:
            await store.close()

    app = FastAPI(
        title="eibert cloud",
        summary="Signed model registry, staged rollout and LDP fleet metrics",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    document_cloud(app)  # every status a route can answer, in the shared error shape
    # JSON bodies are small; only the bundle upload may be large
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_json_bytes, routes={("POST", "/v1/models"): settings.max_upload_bytes}
    )
    app.add_middleware(RequestMetrics, observe=metrics.observe_request)  # outermost: counts 413s and errors too
    return app
