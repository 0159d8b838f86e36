"""Everything one edge app holds at run time, in one object on `app.state.edge` (no module-level globals)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from service.edge.batching import MicroBatcher
from service.edge.cache import EmbeddingCache
from service.edge.config import EdgeSettings
from service.edge.embedder import Embedder
from service.edge.hooks import EdgeEvent, TelemetryHook
from service.edge.metrics import EdgeMetrics
from service.edge.ranker import RankerConfig
from service.edge.slot import ModelSlot
from service.edge.updater import ModelUpdater, UpdateStatus

log = logging.getLogger(__name__)


@dataclass
class EdgeState:
    settings: EdgeSettings
    metrics: EdgeMetrics
    slot: ModelSlot
    cache: EmbeddingCache
    embedder: Embedder
    batcher: MicroBatcher | None
    ranker: RankerConfig = field(default_factory=RankerConfig)
    updater: ModelUpdater | None = None
    telemetry: TelemetryHook | None = None
    disabled_updates: UpdateStatus = field(default_factory=lambda: UpdateStatus(enabled=False, state="disabled"))
    serving: bool = False  # between the lifespan's startup and the start of its shutdown

    @property
    def update_status(self) -> UpdateStatus:
        return self.updater.status if self.updater is not None else self.disabled_updates

    @property
    def ready(self) -> bool:
        return self.serving and self.slot.current is not None and (self.batcher is None or self.batcher.running)

    def observe(self, event: EdgeEvent) -> None:
        """Hand an event to the telemetry client, if any; its failure never fails a request."""
        if self.telemetry is None:
            return
        try:
            self.telemetry.observe(event)
        except Exception:
            log.exception("telemetry hook failed; event dropped")
