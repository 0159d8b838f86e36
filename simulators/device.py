"""One simulated device, and the simulated clock every device steps through.

Simulated time moves in one-hour steps with a barrier between them: every device finishes hour h (its update
check, its sessions, its end-of-day telemetry) before any starts hour h + 1, and scheduled events (a publish,
a rollout step) run between hours. So a run is as fast as the CPU allows, yet a rollout at "day 1, 12:00" is
seen by every device at the same simulated moment, whatever the wall clock did.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from service.common.ldp import METRICS, latency_bucket_of
from service.edge.telemetry import TelemetryClient
from simulators.failures import FailureLedger
from simulators.impressions import ImpressionBuffer
from simulators.personas import Catalog, Persona, examination, relevance
from simulators.runtime import Behavior, EdgeRanker, RankContext
from simulators.summary import TelemetrySummary
from simulators.updates import DeviceUpdater

log = logging.getLogger(__name__)

HOUR_S = 3600.0
# Relative activity by local hour (mean 1): quiet nights, a morning commute, lunch, and an evening peak.
DIURNAL = np.array([0.2, 0.1, 0.05, 0.05, 0.05, 0.2, 0.6, 1.2, 1.4, 1.0, 0.9, 1.1, 1.5, 1.3, 1.0, 0.9, 1.0, 1.2,
                    1.5, 1.9, 2.2, 2.1, 1.6, 0.9])  # fmt: skip
DIURNAL = DIURNAL / DIURNAL.mean()
MAX_SESSIONS_PER_HOUR = 3
MAX_BEHAVIORS = 30
MOVIE_SHARE = 0.7  # of each candidate slate; the rest is news


class SimClock:
    """Hour steps with a barrier; the fleet calls `advance()`, devices `next_hour()` and `done()`."""

    def __init__(self, start: float, hours: int, devices: int) -> None:
        self.start = start
        self.hours = hours
        self.devices = devices
        self.hour = -1
        self._cond = asyncio.Condition()
        self._running = 0
        self._idle = asyncio.Event()

    def time_of(self, hour: int) -> float:
        return self.start + hour * HOUR_S

    async def advance(self) -> None:
        """Start the next hour and return once every device has finished it."""
        async with self._cond:
            self.hour += 1
            self._running = self.devices if self.hour < self.hours else 0
            self._idle.clear()
            self._cond.notify_all()
        if self._running:
            await self._idle.wait()

    async def next_hour(self, last: int) -> int | None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.hour > last)
            return self.hour if self.hour < self.hours else None

    def done(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._idle.set()


@dataclass
class FleetStats:
    """Everything devices count; owned by the fleet, written only from the event loop (plus `lock`ed parts)."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {"in_process": [], "http": []})
    sessions: int = 0
    impressions: int = 0  # items shown, each logged with its slot (clicked or not)
    clicks: int = 0
    top_clicks: int = 0
    rank_errors: int = 0
    day_sessions: int = 0
    day_clicks: int = 0
    day_active: set[str] = field(default_factory=set)
    checks: Counter[str] = field(default_factory=Counter)  # outcome of update checks
    failures: Counter[str] = field(default_factory=Counter)  # failure stage of update checks
    day_failures: Counter[str] = field(default_factory=Counter)
    corrupt_rejected: int = 0  # checks that failed at sha256/unpack/manifest after a download
    corrupt_recovered: int = 0  # devices that installed the version at a later check
    corrupt_kept: Counter[str] = field(default_factory=Counter)  # version still serving after a rejection
    # ground truth of the telemetry: (metric, model version, day) -> category -> count of recorded raw values
    truth: dict[tuple[str, str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # the outboxes' tallies, kept in the summary's own model (its `pending` is filled in after the final flush)
    telemetry: TelemetrySummary = field(default_factory=TelemetrySummary)
    skipped_version: int = 0  # values not recorded: the device's version was unknown
    flush_errors: int = 0
    ledger: FailureLedger = field(default_factory=FailureLedger)  # every failed call, by cause
    lock: threading.Lock = field(default_factory=threading.Lock)  # for the counters worker threads update


_CORRUPT_STAGES = frozenset({"sha256", "unpack", "manifest"})


def _rank_error(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from the edge node: {exc.response.text[:200]}"
    return f"{type(exc).__name__}: {exc}"


class SimDevice:
    def __init__(
        self,
        *,
        device_id: str,
        persona: Persona,
        catalog: Catalog,
        stats: FleetStats,
        updater: DeviceUpdater,
        follows_rollout: bool,
        edge: EdgeRanker | None,
        telemetry_http: httpx.Client,
        outbox: Path,
        rng: np.random.Generator,
        poll_hours: int,
        poll_phase: int,
        day_label: Callable[[int], dt.date],  # simulated day -> label: the cloud's day now (the fleet's clock)
        top_k: int,
        slate: int,
    ) -> None:
        self.device_id = device_id
        self.persona = persona
        self.catalog = catalog
        self.stats = stats
        self.updater = updater
        self.follows_rollout = follows_rollout
        self.edge = edge
        self.telemetry_http = telemetry_http
        self.outbox = outbox
        self.rng = rng
        self.poll_hours = poll_hours
        self.poll_phase = poll_phase
        self.day_label = day_label
        self.top_k = top_k
        self.slate = slate
        self.telemetry: TelemetryClient | None = None
        self.behaviors: list[Behavior] = []
        self.impressions = ImpressionBuffer()  # what the device showed, with slots: position-bias learning reads it
        self.edge_version: str | None = None  # release id the edge node last served this device
        self.retry_update = False
        self.pending_corrupt = False
        self.spent: dict[str, float] = {}  # day -> epsilon spent (from the outbox's ledger)
        self._day_latencies: list[float] = []
        self._day_sessions = 0
        self._day_top_click = False

    # -- identity -------------------------------------------------------------------------------------------

    @property
    def version(self) -> str | None:
        """The release id of the model this device uses now (an edge node's answers name it as the cloud does)."""
        if self.edge is None:
            return self.updater.model.version
        return self.edge_version

    def seed_history(self, start: float) -> None:
        """The persona's history as behaviors in the days before the simulation starts."""
        n = len(self.persona.history)
        for i, item_id in enumerate(self.persona.history):
            item = self.catalog.items[item_id]
            self.behaviors.append(Behavior(item.text, start - (n - i) * 86400.0, "view", item_id))

    # -- the hour loop --------------------------------------------------------------------------------------

    async def run(self, clock: SimClock) -> None:
        last = -1
        while (hour := await clock.next_hour(last)) is not None:
            try:
                await self.act(hour, clock.time_of(hour))
            except Exception as exc:  # one device's bug must not stall the barrier for the fleet, nor pass unseen
                log.exception("device %s failed at hour %d", self.device_id, hour)
                self.stats.ledger.add("device", None, f"hour {hour}: {type(exc).__name__}: {exc}")
            finally:
                clock.done()
            last = hour

    async def act(self, hour: int, now: float) -> None:
        if self.updater.token is None:
            with self.stats.ledger.scope() as seen:
                enrolled = await self.updater.enrol()
            if not enrolled:  # the cloud is unreachable: try again next hour (nothing works without a token)
                self.stats.ledger.step_failed(seen, "enrol", "enrolment failed with no failed request")
                return
        if self.follows_rollout and (self.retry_update or hour % self.poll_hours == self.poll_phase):
            await self._check_update()
        local = (hour + self.persona.tz_offset_h) % 24
        rate = self.persona.sessions_per_day * DIURNAL[local] / 24.0
        for _ in range(min(int(self.rng.poisson(rate)), MAX_SESSIONS_PER_HOUR)):
            await self._session(now + float(self.rng.uniform(0, HOUR_S)))
        if hour % 24 == 23:
            await self._end_of_day(hour // 24)

    async def _check_update(self) -> None:
        before = self.updater.model.version
        ledger = self.stats.ledger
        with ledger.scope() as seen:
            result = await self.updater.check()
        self.stats.checks[result.outcome] += 1
        self.retry_update = result.outcome == "failed"
        if result.outcome == "failed":
            stage = result.stage or "internal"
            self.stats.failures[stage] += 1
            self.stats.day_failures[stage] += 1
            if stage in _CORRUPT_STAGES:
                ledger.refused_bundle(f"update check refused the download at {stage}: {result.error}")
            else:
                ledger.step_failed(seen, f"update:{stage}", str(result.error))
            if stage in _CORRUPT_STAGES:
                self.stats.corrupt_rejected += 1
                self.stats.corrupt_kept[result.serving] += 1
                self.pending_corrupt = True
                assert result.serving == before, "a rejected bundle must leave the old model serving"
        elif result.outcome == "updated" and self.pending_corrupt:
            self.pending_corrupt = False
            self.stats.corrupt_recovered += 1

    # -- behavior ------------------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[str, str]]:
        n_movies = round(self.slate * MOVIE_SHARE)
        catalog = self.catalog
        movies = self.rng.choice(len(catalog.movie_ids), size=n_movies, replace=False, p=catalog.movie_weights)
        news = self.rng.choice(len(self.catalog.news_ids), size=self.slate - n_movies, replace=False)
        ids = [self.catalog.movie_ids[i] for i in movies] + [self.catalog.news_ids[i] for i in news]
        return [(i, self.catalog.items[i].text) for i in ids]

    async def _session(self, ts: float) -> None:
        candidates = self._candidates()
        behaviors = self.behaviors[-MAX_BEHAVIORS:]
        context = RankContext(now=ts, utc_offset_min=60 * self.persona.tz_offset_h)
        try:
            if self.edge is None:
                t0 = time.perf_counter()
                ranked = self.updater.model.rank(behaviors, candidates, self.top_k, context)
                ms, mode = (time.perf_counter() - t0) * 1000.0, "in_process"
            else:
                ranked, self.edge_version, ms = await self.edge.rank(behaviors, candidates, self.top_k, context)
                mode = "http"
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.stats.rank_errors += 1
            log.debug("%s: rank failed: %s", self.device_id, exc)
            self.stats.ledger.add("rank", None, _rank_error(exc))  # nothing is injected between device and edge
            return
        self.stats.latencies[mode].append(ms)
        self._day_latencies.append(ms)
        self._day_sessions += 1
        self.stats.sessions += 1
        self.stats.day_sessions += 1
        self.stats.day_active.add(self.device_id)
        self.stats.impressions += len(ranked)
        for pos, item_id in enumerate(ranked):
            item = self.catalog.items[item_id]
            if self.rng.random() >= examination(self.persona, pos):
                self.impressions.add(item_id, pos, False, ts)
                continue
            clicked = self.rng.random() < relevance(item, self.persona)
            self.impressions.add(item_id, pos, clicked, ts)
            if clicked:
                self.stats.clicks += 1
                self.stats.day_clicks += 1
                self.behaviors.append(Behavior(item.text, ts, "click", item_id))
                if pos == 0:
                    self.stats.top_clicks += 1
                    self._day_top_click = True

    # -- telemetry ------------------------------------------------------------------------------------------

    async def _end_of_day(self, day: int) -> None:
        label = self.day_label(day).isoformat()
        values: list[tuple[str, str | bool]] = [("top_genre", self.persona.top_genre)]
        if self._day_sessions:
            values.append(("top_item_clicked", self._day_top_click))
            values.append(("latency_bucket", latency_bucket_of(statistics.median(self._day_latencies))))
        self._day_latencies, self._day_sessions, self._day_top_click = [], 0, False
        if self.edge is not None:
            # a user of an edge node runs the node's version, which the cloud offered the node, not this device:
            # the cloud takes reports only under a version it offered the reporting device, so such users send none
            return
        version = self.version
        if version is None or self.updater.token is None:
            self.stats.skipped_version += len(values)
            return
        recorded = await asyncio.to_thread(self._record_and_flush, values, version, label)
        for metric, value in recorded:
            spec = METRICS[metric]
            self.stats.truth[(metric, version, label)][spec.categories[spec.index(value)]] += 1

    def _record_and_flush(
        self, values: list[tuple[str, str | bool]], version: str, label: str
    ) -> list[tuple[str, str | bool]]:
        """Blocking (SQLite, HTTP): runs in a worker thread. Only LDP reports leave; raw values stay here."""
        self.telemetry = self.telemetry or self._open_outbox()
        day = dt.date.fromisoformat(label)
        recorded = []
        for metric, value in values:
            if self.telemetry.record(metric, value, model_version=version, day=day) is not None:
                recorded.append((metric, value))
        with self.stats.lock:
            self.stats.telemetry.recorded += len(recorded)
            self.stats.telemetry.skipped_budget += len(values) - len(recorded)
        self.spent[label] = self.telemetry.spent(day)
        self.flush()
        return recorded

    def _open_outbox(self) -> TelemetryClient:
        """The device's outbox, opened for one end of day: kept open only while reports are pending.

        A SQLite outbox in WAL mode holds three file descriptors; 10,000 devices holding theirs open for the
        whole run would pass the process's limit (commonly 20,000 or less). The outbox and its budget ledger
        are durable, so reopening it is the device's state exactly as it was left."""
        return TelemetryClient(
            outbox=self.outbox,
            cloud=self.telemetry_http,
            token=self.updater.token or "",
            rng=np.random.default_rng(int(self.rng.integers(1 << 62))),  # seeded: simulations only
        )

    def flush(self) -> int:
        """Send the outbox; returns what is still pending, and closes it once nothing is. Blocking."""
        if self.telemetry is None:
            return 0
        ledger = self.stats.ledger
        with ledger.scope() as seen:
            result = self.telemetry.flush()
        if result.error is not None:
            ledger.step_failed(seen, "telemetry", result.error)
        for _ in range(result.refused):  # the cloud's reasons are in its answer (and the outbox's log)
            ledger.add("telemetry-refused", None, "a report was refused by the cloud")
        for _ in range(result.dropped):
            ledger.add("telemetry-malformed", None, "the cloud rejected a report as malformed")
        with self.stats.lock:
            self.stats.telemetry.accepted += result.accepted
            self.stats.telemetry.duplicate += result.duplicate
            self.stats.telemetry.refused += result.refused
            self.stats.flush_errors += result.error is not None
        if result.remaining == 0:
            self.telemetry.close()
            self.telemetry = None
        return result.remaining
