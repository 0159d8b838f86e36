"""Device-side fleet telemetry: privatise on the device, never overspend the privacy budget, deliver once.

- `record()` turns a raw value (a genre, a latency, a click) into an LDP report right away
  (`service.common.ldp`), charges its epsilon against today's budget and stores only the encoded report in a
  durable SQLite outbox. The raw value is never written anywhere. A report that would exceed the day's budget
  is not made at all (no randomness is drawn for it).
- `flush()` posts the outbox to the cloud in batches and deletes a report only once the cloud has answered
  for it (accepted, duplicate or refused). A lost response means the report is sent again with the same
  report id and the same encoded payload, which the cloud acknowledges as a duplicate: counted exactly once.
  Retries must never re-encode: a fresh randomisation of the same value would spend the budget again.

Blocking (sqlite3 + a sync httpx client); an async service calls it from a worker thread
(`await anyio.to_thread.run_sync(client.flush)`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import sqlite3
import statistics
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import numpy as np
from pydantic import ValidationError

from service.common import device_client
from service.common.closing import Closing
from service.common.device_client import TELEMETRY_ACK_MAX_BYTES, ResponseRefused
from service.common.ldp import (
    MAX_REPORTS_PER_BATCH,
    METRICS,
    Mechanism,
    TelemetryAck,
    encode_report,
    latency_bucket_of,
    micro_epsilon,
)
from service.edge.hooks import EdgeEvent
from service.edge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DEFAULT_DAILY_BUDGET = 1.0
DEFAULT_MAX_OUTBOX = 10_000
DEFAULT_BATCH = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, report_id TEXT NOT NULL UNIQUE, day TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budget (day TEXT PRIMARY KEY, spent_micro INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reported (metric TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (metric, day));
"""


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclasses.dataclass
class FlushResult:
    sent: int = 0
    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    dropped: int = 0  # rejected by the cloud as malformed (422 for a single report): never deliverable
    remaining: int = 0
    error: str | None = None


class TelemetryClient(Closing):
    def __init__(
        self,
        *,
        outbox: Path,
        cloud: httpx.Client,
        token: str | Callable[[], str | None],  # or a getter: an edge node gets its token when it enrols
        daily_budget: float = DEFAULT_DAILY_BUDGET,
        max_outbox: int = DEFAULT_MAX_OUTBOX,
        batch_size: int = DEFAULT_BATCH,
        today: Callable[[], dt.date] = utc_today,
        rng: np.random.Generator | None = None,  # None = OS CSPRNG / OpenDP; a seed is for simulations only
    ) -> None:
        if not 0 < daily_budget <= 100:
            raise ValueError("daily_budget must be in (0, 100]")
        if not 1 <= batch_size <= MAX_REPORTS_PER_BATCH:
            raise ValueError(f"batch_size must be in [1, {MAX_REPORTS_PER_BATCH}]")
        self.cloud = cloud
        self.token = token
        self.budget_micro = micro_epsilon(daily_budget)
        self.max_outbox = max_outbox
        self.batch_size = batch_size
        self.today = today
        self.rng = rng
        self._lock = threading.Lock()
        outbox = Path(outbox)
        outbox.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(outbox, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a recorded report (and its spend) survives a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # budget ----------------------------------------------------------------------------------------------
    def spent(self, day: dt.date | None = None) -> float:
        """Epsilon spent on `day` (default today), from the durable ledger."""
        with self._lock:
            row = self._db.execute(
                "SELECT spent_micro FROM budget WHERE day = ?", ((day or self.today()).isoformat(),)
            ).fetchone()
        return 0.0 if row is None else row[0] / 1_000_000

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    # record ----------------------------------------------------------------------------------------------
    def record(
        self,
        metric: str,
        value: str | bool,
        *,
        model_version: str,
        epsilon: float | None = None,
        mechanism: Mechanism | None = None,
        once_per_day: bool = False,
        day: dt.date | None = None,
    ) -> str | None:
        """Privatise and queue one value; return its report id, or None if today's budget (or the outbox) is full,
        or, with `once_per_day`, if this metric was already recorded that day (checked in the same transaction).
        `day` (default today) is the day the value belongs to; its budget is the one charged."""
        spec = METRICS[metric]
        eps = spec.default_epsilon if epsilon is None else epsilon
        cost = micro_epsilon(eps)
        day_s = (day or self.today()).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if (
                    once_per_day
                    and self._db.execute(
                        "SELECT 1 FROM reported WHERE metric = ? AND day = ?", (metric, day_s)
                    ).fetchone()
                ):
                    self._db.execute("ROLLBACK")
                    return None
                row = self._db.execute("SELECT spent_micro FROM budget WHERE day = ?", (day_s,)).fetchone()
                spent = 0 if row is None else int(row[0])
                if spent + cost > self.budget_micro:
                    self._db.execute("ROLLBACK")
                    log.debug(
                        "telemetry: %s not recorded, day budget %.2f would be exceeded", metric, self.budget_micro / 1e6
                    )
                    return None
                if self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] >= self.max_outbox:
                    self._db.execute("ROLLBACK")
                    log.warning("telemetry: outbox full (%d reports); %s not recorded", self.max_outbox, metric)
                    return None
                report = encode_report(
                    metric,
                    value,
                    model_version=model_version,
                    day=day_s,
                    epsilon=eps,
                    mechanism=mechanism,
                    rng=self.rng,
                )
                self._db.execute(
                    "INSERT INTO outbox (report_id, day, body) VALUES (?, ?, ?)",
                    (str(report.report_id), day_s, report.model_dump_json()),
                )
                self._db.execute(
                    "INSERT INTO budget (day, spent_micro) VALUES (?, ?)"
                    " ON CONFLICT (day) DO UPDATE SET spent_micro = spent_micro + excluded.spent_micro",
                    (day_s, cost),
                )
                self._db.execute("INSERT OR IGNORE INTO reported (metric, day) VALUES (?, ?)", (metric, day_s))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return str(report.report_id)

    # deliver ---------------------------------------------------------------------------------------------
    def _delete(self, ids: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE report_id = ?", [(i,) for i in ids])

    def flush(self, max_requests: int = 100) -> FlushResult:
        """Send queued reports; stop at the first transport or server error (they stay queued for next time)."""
        result = FlushResult()
        batch = self.batch_size
        token = self.token() if callable(self.token) else self.token
        if token is None:
            result.error = "not enrolled yet"
            result.remaining = self.pending()
            return result
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(max_requests):
            with self._lock:
                rows = self._db.execute("SELECT report_id, body FROM outbox ORDER BY seq LIMIT ?", (batch,)).fetchall()
            if not rows:
                break
            payload = {"reports": [json.loads(body) for _, body in rows]}
            try:
                resp = device_client.request(
                    self.cloud, "POST", "/v1/telemetry", cap=TELEMETRY_ACK_MAX_BYTES, json=payload, headers=headers
                )
            except httpx.HTTPError as exc:
                result.error = f"cloud unreachable: {exc}"
                break
            except ResponseRefused as exc:  # the reports stay queued: the next flush sends them again
                result.error = f"acknowledgement refused: {exc}"
                break
            result.sent += len(rows)
            if resp.status_code == 200:
                try:
                    ack = TelemetryAck.model_validate_json(resp.content)
                except (ValueError, ValidationError) as exc:
                    result.error = f"unreadable acknowledgement: {exc}"
                    break
                answered = {r.report_id for r in ack.results}
                for r in ack.results:
                    if r.status == "refused":
                        log.info("telemetry: report %s refused by the cloud: %s", r.report_id, r.reason)
                self._delete([rid for rid, _ in rows if rid in answered])
                result.accepted += ack.accepted
                result.duplicate += ack.duplicate
                result.refused += ack.refused
            elif resp.status_code in (413, 422) and len(rows) > 1:
                batch = max(1, len(rows) // 2)  # too big for this cloud, or one bad report: narrow it down
            elif resp.status_code == 422:
                log.error(
                    "telemetry: cloud rejects report %s as malformed, dropping it: %s", rows[0][0], resp.text[:300]
                )
                self._delete([rows[0][0]])
                result.dropped += 1
            else:
                result.error = f"cloud answered {resp.status_code}: {resp.text[:300]}"
                break
        result.remaining = self.pending()
        return result


class LatencyTelemetry:
    """The edge app's `TelemetryHook` (service.edge.hooks): once a day, the day's median serving latency goes
    out as one LDP `latency_bucket` report; the outbox is flushed periodically and at shutdown.

    `observe` only appends a float to an in-memory, bounded list (it runs on the event loop after every
    request); encoding, SQLite and HTTP run in a worker thread. A day is reported once it has `min_events`
    requests or once it is over, and never twice (the outbox's `reported` table survives restarts).
    """

    def __init__(
        self,
        client: TelemetryClient,
        *,
        flush_interval_s: float = 60.0,
        min_events: int = 20,
        max_samples: int = 10_000,
    ) -> None:
        if flush_interval_s <= 0 or min_events < 1:
            raise ValueError("flush_interval_s must be > 0 and min_events >= 1")
        self.client = client
        self.flush_interval_s = flush_interval_s
        self.min_events = min_events
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._days: dict[dt.date, tuple[str, deque[float]]] = {}
        self._task: asyncio.Task[None] | None = None

    def observe(self, event: EdgeEvent) -> None:
        day = self.client.today()
        with self._lock:
            _, samples = self._days.get(day, (event.model_version, deque(maxlen=self.max_samples)))
            samples.append(event.latency_s * 1000.0)
            self._days[day] = (event.model_version, samples)

    def report_and_flush(self) -> FlushResult:
        """Record what is due, then send the outbox. Blocking: runs in a worker thread."""
        today = self.client.today()
        with self._lock:
            due = {d: (v, list(s)) for d, (v, s) in self._days.items() if d < today or len(s) >= self.min_events}
            for d in due:
                if d < today:
                    del self._days[d]
        for day, (version, samples) in sorted(due.items()):
            bucket = latency_bucket_of(statistics.median(samples))
            self.client.record("latency_bucket", bucket, model_version=version, once_per_day=True, day=day)
        return self.client.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                result = await anyio.to_thread.run_sync(self.report_and_flush)
                if result.error:
                    log.info("telemetry: flush incomplete (%d queued): %s", result.remaining, result.error)
            except Exception as exc:  # the loop must survive anything one round does
                log.warning("telemetry: round failed: %s", exc)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="telemetry-flush")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        try:
            await anyio.to_thread.run_sync(self.report_and_flush)
        except Exception as exc:  # shutdown must not fail on telemetry
            log.warning("telemetry: final flush failed: %s", exc)
