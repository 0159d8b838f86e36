"""The edge node's moving parts, started in order by the app's lifespan and stopped in reverse.

Start: load and warm the startup bundle (a bad bundle fails startup: better no node than one serving an
unverified model), start the micro-batcher, start the model updater (only with a cloud) and the telemetry
hook (the one given, or this node's own LDP telemetry once it has an updater). Stop: stop taking work first
(not ready), then the hook, the updater, the client the node opened itself, and the batcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.edge.config import EdgeSettings
from service.edge.hooks import TelemetryHook
from service.edge.slot import LoadedModel, admitting
from service.edge.state import EdgeState
from service.edge.telemetry import LatencyTelemetry, TelemetryClient
from service.edge.updater import ModelUpdater

log = logging.getLogger(__name__)

Loader = Callable[[Path], LoadedModel]
OnSwap = Callable[[LoadedModel, LoadedModel | None], None]


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


@dataclass
class EdgeLifecycle:
    """`start()` and `stop()` of one app's parts; `cloud_client` and `telemetry` are the caller's, if given."""

    settings: EdgeSettings
    state: EdgeState
    loader: Loader
    on_swap: OnSwap
    cloud_client: httpx.AsyncClient | None = None
    telemetry: TelemetryHook | None = None
    own_client: httpx.AsyncClient | None = None  # opened here, so closed here
    hook: TelemetryHook | None = None

    async def start(self) -> None:
        first = await asyncio.to_thread(self.loader, self.settings.bundle)
        self.state.slot.swap(first)
        self.on_swap(first, None)
        if self.state.batcher is not None:
            self.state.batcher.start()
        client = self._cloud()
        if client is not None:
            self.state.updater = self._updater(client)
            await self.state.updater.resume()  # the newest signed bundle accepted before a restart, not the factory one
            self.state.updater.start()
        self.hook = self.telemetry
        if self.hook is None and self.state.updater is not None and self.settings.telemetry:
            self.hook = self.state.telemetry = device_telemetry(self.settings, client.base_url, self.state.updater)
        if self.hook is not None:
            await self.hook.start()
        batching = "on" if self.state.batcher else "off"
        log.info("edge node ready: model %s, batching %s", first.release_id, batching)
        self.state.serving = True

    async def stop(self) -> None:
        self.state.serving = False  # not ready from here on: a stopping node takes no new work
        if self.hook is not None:
            await self.hook.stop()
            if isinstance(self.hook, LatencyTelemetry) and self.hook is not self.telemetry:
                self.hook.client.close()
                self.hook.client.cloud.close()
        if self.state.updater is not None:
            await self.state.updater.stop()
        if self.own_client is not None:
            await self.own_client.aclose()
        if self.state.batcher is not None:
            await self.state.batcher.stop()

    def _cloud(self) -> httpx.AsyncClient | None:
        """The caller's cloud client, else one opened for `settings.cloud`, else None (no cloud: no updates)."""
        if self.cloud_client is not None:
            return self.cloud_client
        if self.settings.cloud is None:
            return None
        self.own_client = httpx.AsyncClient(base_url=self.settings.cloud, timeout=self.settings.http_timeout_s)
        return self.own_client

    def _updater(self, client: httpx.AsyncClient) -> ModelUpdater:
        s = self.settings
        return ModelUpdater(
            client=client,
            slot=self.state.slot,
            loader=admitting(self.loader, s.admission),  # updates are trial-loaded in a child first
            public_key=s.pinned_public_key(),
            state_dir=s.state_dir,
            metrics=self.state.metrics,
            device_id=s.device_id,
            deployment=s.deployment,
            enrolment_token=s.enrolment_credential(),
            on_swap=self.on_swap,
            poll_interval_s=s.poll_interval_s,
            keep_bundles=s.keep_bundles,
            max_bundle_bytes=s.max_bundle_bytes,
            max_metadata_age_s=s.max_metadata_age_s,
            download_timeout_s=s.download_timeout_s,
            reset_trust=s.reset_trust,
        )
