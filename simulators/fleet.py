"""A fleet of simulated devices against a real cloud (over HTTP only) and, optionally, real edge nodes.

`Fleet(config).run()` loads personas, enrols every device, steps simulated hours (scheduled events between
them), then flushes the outboxes, reads what the cloud released (`GET /v1/fleet/metrics`) and returns a
`FleetSummary` that sets those estimates beside the ground truth the simulation knows.

Days are the cloud's (service/cloud/clock.py), never the simulator's own labels: the cloud charges budgets on
the day it receives a report and accepts only labels in [its today - window, its today]. A device labels its
end-of-day reports with the cloud's current day; after each simulated day the fleet advances the cloud's clock
by one day (`POST /v1/clock`, which only a dev-mode cloud allows, with the admin token), and after the final
flush it advances past the window, so the last day closes and every day is released (or withheld) by the
cloud's own rule. Against a cloud whose clock cannot be advanced, every simulated day is the cloud's one real
day: the per-device daily budget then caps what is reported, and nothing closes before the run ends (a note
says so).

Failures: every failed call (request, rank call, refused download, device-level step) is counted by cause in
`FleetStats.ledger` (`simulators.failures`); the summary's `failures` and its check "no unexplained failures"
make a run with any failure no injected fault explains a failed run.

Enrolment: every device enrols with one operator-issued enrolment token, `enrolment_token` if given, else one
the fleet issues itself with `admin_token` (quota = the fleet size).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from service.common.signing import public_key_from_b64
from simulators.device import FleetStats, SimClock, SimDevice
from simulators.faults import (
    BoundedAsyncTransport,
    FaultInjector,
    FaultyAsyncTransport,
    FaultyTransport,
    Observer,
)
from simulators.fleet_config import FleetConfig
from simulators.fleet_summary import read_edge_status, summarize
from simulators.personas import load_catalog_and_personas
from simulators.runtime import EdgeRanker, ModelLibrary
from simulators.summary import EdgeNodeSummary, FleetSummary, TimelineEntry
from simulators.updates import DeviceUpdater

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 30.0
# Idle pooled connections are dropped by the client after this long, well before the servers' own keep-alive
# timeout (uvicorn's default: 5 s, which is also httpx's default expiry). With equal timeouts a request can go
# out on a connection the server is closing at that moment: a ReadError no fault explains (seen on the edge
# node's /v1/rank in a 1,500-device demo, where a simulated hour outlasts 5 s).
KEEPALIVE_EXPIRY_S = 2.0


def client_limits(max_connections: int | None = None) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)


CLOUD_CONNECTIONS = 32  # the devices' async client: one cloud process answers; more only queue in the pool
ENROLMENT_TOKEN_TTL_S = 86400
CLOCK_RETRY_S = 120.0  # how long advancing the cloud's clock is retried while the cloud restarts
FINAL_FLUSH_ATTEMPTS = 3
SHOWN_CATEGORIES = 5


@dataclass(frozen=True)
class ScheduledEvent:
    """Something that happens between simulated hours (publish, rollout step); returns a timeline line."""

    hour: int
    action: Callable[[], Awaitable[str]]


Timeline = Callable[[str], None]


class Fleet:
    def __init__(
        self,
        config: FleetConfig,
        *,
        events: Sequence[ScheduledEvent] = (),
        restart_cloud: Callable[[], Awaitable[str]] | None = None,
        observer: Observer | None = None,
        timeline: Timeline | None = None,
    ) -> None:
        self.config = config
        self.events = sorted(events, key=lambda e: e.hour)
        self.restart_cloud = restart_cloud
        self.observer = observer
        self._timeline_out = timeline or log.info
        self.devices: list[SimDevice] = []
        self.stats = FleetStats()
        self.injector = FaultInjector(config.faults, seed=config.seed, ledger=self.stats.ledger)
        self.timeline: list[TimelineEntry] = []
        self.notes: list[str] = []
        self.restart_report: str | None = None
        self.cloud_day: dt.date = dt.datetime.now(dt.UTC).date()  # the cloud's today, as last read from it
        self.window_days = 0
        self.clock_advances = True

    # -- timeline -------------------------------------------------------------------------------------------

    def versions_now(self) -> dict[str, int]:
        return dict(sorted(Counter(d.version or "unknown" for d in self.devices).items()))

    def say(self, hour: int, text: str) -> None:
        day, hh = divmod(max(hour, 0), 24)
        line = f"[day {day + 1} {hh:02d}:00] {text}"
        self.timeline.append(TimelineEntry(hour=hour, text=text, versions=self.versions_now()))
        self._timeline_out(line)

    # -- run ------------------------------------------------------------------------------------------------

    async def run(self) -> FleetSummary:
        own_state = self.config.state_dir is None
        state_dir = Path(tempfile.mkdtemp(prefix="eibert-sim-")) if own_state else Path(self.config.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            return await self._run(state_dir)
        finally:
            if own_state:
                shutil.rmtree(state_dir, ignore_errors=True)

    async def _run(self, state_dir: Path) -> FleetSummary:
        cfg = self.config
        t0 = time.perf_counter()
        catalog, personas = await asyncio.to_thread(load_catalog_and_personas, cfg.devices, cfg.seed, cfg.data_root)
        async with contextlib.AsyncExitStack() as stack:
            # Setup and read-back go through a plain client: faults are for the devices' traffic.
            plain = await stack.enter_async_context(httpx.AsyncClient(base_url=cfg.cloud_url, timeout=HTTP_TIMEOUT_S))
            cloud = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=cfg.cloud_url,
                    timeout=HTTP_TIMEOUT_S,
                    transport=FaultyAsyncTransport(
                        BoundedAsyncTransport(
                            httpx.AsyncHTTPTransport(limits=client_limits(CLOUD_CONNECTIONS)), CLOUD_CONNECTIONS
                        ),
                        self.injector,
                        self.observer,
                    ),
                )
            )
            sync_cloud = stack.enter_context(
                httpx.Client(
                    base_url=cfg.cloud_url,
                    timeout=HTTP_TIMEOUT_S,
                    transport=FaultyTransport(
                        httpx.HTTPTransport(limits=client_limits()), self.injector, self.observer
                    ),
                )
            )
            edge_client = stack.enter_context(httpx.Client(timeout=HTTP_TIMEOUT_S, limits=client_limits()))
            key_b64 = cfg.cloud_public_key or await self._fetch_public_key(plain)
            public_key = public_key_from_b64(key_b64)
            models = ModelLibrary(state_dir / "models")
            factory = await asyncio.to_thread(models.load_factory, cfg.bundle)
            n_edge = (cfg.devices if cfg.edge_devices is None else min(cfg.edge_devices, cfg.devices)) * bool(
                cfg.edge_urls
            )
            edge = EdgeRanker(edge_client, cfg.edge_urls) if cfg.edge_urls else None
            if edge is not None:
                stack.callback(edge.close)
            await self._read_clock(plain)
            enrolment_token = cfg.enrolment_token or await self._issue_enrolment_token(plain)

            def day_label(_day: int) -> dt.date:
                return self.cloud_day  # the cloud's day now: the fleet moves it on between simulated days

            start = dt.datetime.combine(self.cloud_day, dt.time(), tzinfo=dt.UTC).timestamp()
            run_id = cfg.run_id or uuid.uuid4().hex[:8]
            for i, persona in enumerate(personas):
                device_id = f"sim-{run_id}-{i:05d}"
                via_edge = i >= cfg.devices - n_edge
                device = SimDevice(
                    device_id=device_id,
                    persona=persona,
                    catalog=catalog,
                    stats=self.stats,
                    updater=DeviceUpdater(
                        device_id=device_id,
                        client=cloud,
                        public_key=public_key,
                        models=models,
                        model=factory,
                        enrolment_token=enrolment_token,
                    ),
                    follows_rollout=not via_edge,
                    edge=edge if via_edge else None,
                    telemetry_http=sync_cloud,
                    outbox=state_dir / "devices" / device_id / "outbox.db",
                    rng=np.random.default_rng([cfg.seed, i]),
                    poll_hours=cfg.poll_hours,
                    poll_phase=i % cfg.poll_hours,
                    day_label=day_label,
                    top_k=cfg.top_k,
                    slate=cfg.slate,
                )
                device.seed_history(start)
                self.devices.append(device)
            for url in cfg.edge_urls:  # devices of a node report its version until they first rank
                served = (await self.edge_status(plain, url)).model_version
                for d in self.devices:
                    if d.edge is not None and d.edge_version is None:
                        d.edge_version = served
            try:
                await self._simulate(start, plain)
                self.say(cfg.days * 24 - 1, "simulation over; flushing device outboxes")
                pending = await self._final_flush()
                await self._close_last_day(plain)
                return await self._summary(plain, time.perf_counter() - t0, pending, len(self.devices) - n_edge)
            finally:
                for d in self.devices:
                    if d.telemetry is not None:
                        d.telemetry.close()

    async def _read_clock(self, client: httpx.AsyncClient) -> None:
        resp = await client.get("/v1/clock")
        resp.raise_for_status()
        body = resp.json()
        self.cloud_day = dt.date.fromisoformat(body["today"])
        self.window_days = int(body["report_window_days"])
        self.clock_advances = bool(body["advanceable"]) and self.config.admin_token is not None
        if self.clock_advances:
            self.notes.append(
                "dev-mode cloud: its clock was advanced one day per simulated day (days compressed into seconds), "
                "so each day closed and its groups were released during the run; a production cloud never allows it"
            )
        else:
            self.notes.append(
                "the cloud's clock cannot be advanced (not a dev-mode cloud, or no admin token): every simulated "
                "day is the cloud's one real day, and its metrics are released only after that day closes"
            )

    async def _advance_clock(self, client: httpx.AsyncClient, days: int) -> None:
        """Move the cloud's day on (a dev-mode cloud, with the admin token); retried while the cloud restarts."""
        if not self.clock_advances or days < 1:
            return
        headers = {"Authorization": f"Bearer {self.config.admin_token}"}
        deadline = time.monotonic() + CLOCK_RETRY_S
        why = ""
        while time.monotonic() < deadline:
            try:
                resp = await client.post("/v1/clock", json={"advance_days": days}, headers=headers)
            except httpx.HTTPError as exc:  # the cloud is restarting: try again shortly
                why = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.5)
                continue
            if resp.status_code == 200:
                self.cloud_day = dt.date.fromisoformat(resp.json()["today"])
                return
            why = f"HTTP {resp.status_code}: {resp.text[:200]}"
            if resp.status_code < 500:
                break
            await asyncio.sleep(0.5)
        self.notes.append(f"the cloud's clock could not be advanced ({why}); later days share one cloud day")
        self.clock_advances = False

    async def _close_last_day(self, client: httpx.AsyncClient) -> None:
        """After the final flush: advance past the window, so the last simulated day closes and is released."""
        await self._advance_clock(client, self.window_days)

    async def _issue_enrolment_token(self, client: httpx.AsyncClient) -> str | None:
        if self.config.admin_token is None:
            self.notes.append("no enrolment token and no admin token to issue one: devices cannot enrol")
            return None
        resp = await client.post(
            "/v1/enrolment-tokens",
            json={"max_devices": self.config.devices, "expires_in_s": ENROLMENT_TOKEN_TTL_S, "label": "simulator"},
            headers={"Authorization": f"Bearer {self.config.admin_token}"},
        )
        resp.raise_for_status()
        return str(resp.json()["token"])

    async def _fetch_public_key(self, client: httpx.AsyncClient) -> str:
        resp = await client.get("/v1/signing-key")
        resp.raise_for_status()
        return str(resp.json()["public_key"])

    async def _simulate(self, start: float, plain: httpx.AsyncClient) -> None:
        cfg = self.config
        hours = cfg.days * 24
        events = list(self.events)
        if cfg.faults.cloud_restart:
            if self.restart_cloud is None:
                self.notes.append("cloud-restart skipped: this simulator does not own the cloud process")
            else:
                events.append(ScheduledEvent(hour=max(1, int(hours * 0.45)), action=self._restart))
                events.sort(key=lambda e: e.hour)
        clock = SimClock(start, hours, len(self.devices))
        tasks = [asyncio.create_task(d.run(clock), name=d.device_id) for d in self.devices]
        self.say(0, f"{len(self.devices)} devices start; versions {self.versions_now()}")
        try:
            for hour in range(hours):
                for event in [e for e in events if e.hour == hour]:
                    self.say(hour, await event.action())
                await clock.advance()
                if hour % 24 == 23:  # every device has recorded the day: deliver it, then the cloud's day moves on
                    await self._final_flush()  # a device retries a failed flush within the day it was made
                    await self._advance_clock(plain, 1)
                    self._day_line(hour)
            await clock.advance()  # hour == hours: every device task returns
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _restart(self) -> str:
        assert self.restart_cloud is not None
        self.stats.ledger.outage_begins()  # until the cloud's first answer below 500
        self.restart_report = await self.restart_cloud()
        return f"fault: {self.restart_report}"

    def _day_line(self, hour: int) -> None:
        s = self.stats
        faults = dict(self.injector.injected)
        failures = dict(s.day_failures)
        self.say(
            hour,
            f"day done: active {len(s.day_active)}/{len(self.devices)}, sessions {s.day_sessions}, "
            f"clicks {s.day_clicks}, versions {self.versions_now()}"
            + (f", update failures {failures}" if failures else "")
            + (f", faults so far {faults}" if faults else ""),
        )
        s.day_sessions, s.day_clicks = 0, 0
        s.day_active.clear()
        s.day_failures.clear()

    async def _final_flush(self) -> int:
        pending = 0
        for attempt in range(FINAL_FLUSH_ATTEMPTS):
            left = await asyncio.gather(*(asyncio.to_thread(d.flush) for d in self.devices if d.telemetry))
            pending = sum(left)
            if pending == 0:
                break
            log.info("final flush %d: %d reports still pending", attempt + 1, pending)
        return pending

    # -- summary (built in simulators.fleet_summary) -------------------------------------------------------

    async def _summary(self, plain: httpx.AsyncClient, wall_s: float, pending: int, following: int) -> FleetSummary:
        return await summarize(self, plain, wall_s=wall_s, pending=pending, following=following)

    async def edge_status(self, client: httpx.AsyncClient, url: str) -> EdgeNodeSummary:
        return await read_edge_status(client, url)
