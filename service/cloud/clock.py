"""The cloud's day: what the epsilon ledger is charged on and what closes a day for release.

Budgets are the server's facts (style.md section 7): a device's own `day` label never decides which budget
it spends or when a group may be released. The cloud's today is the real UTC date plus a whole-day offset
held in the store, so every replica and every restart agrees on it. The offset is 0 in production and only
moves forward; only a dev-mode cloud (`EIBERT_CLOUD_DEV_MODE=1`) lets an admin advance it
(`POST /v1/clock`), which is how the demo and the simulator compress simulated days into seconds without
ever trusting a client's label.

Because the offset lives in the store, a dev-mode replica pointed at a production store would move the day
for every replica (issue 22). So a store belongs to one mode and one deployment: the first cloud to open it
marks it (`Store.claim`, put-if-absent), and a cloud of another mode or deployment refuses to start on it
(`claim_store`). A dev cloud can never touch a production store's clock, nor a staging cloud production's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from service.cloud.errors import StoreError
from service.cloud.store import Store

MAX_ADVANCE_DAYS = 366


def store_owner(*, dev_mode: bool, deployment: str) -> str:
    return f"{'dev' if dev_mode else 'production'}:{deployment}"


async def claim_store(store: Store, *, dev_mode: bool, deployment: str) -> None:
    """Mark a fresh store as this cloud's, or StoreError if another mode or deployment marked it first."""
    mine = store_owner(dev_mode=dev_mode, deployment=deployment)
    held = await store.claim(mine)
    if held != mine:
        raise StoreError(
            f"this store is marked {held!r} (mode:deployment); a {mine!r} cloud refuses to use it (a dev-mode "
            "clock in it would move every replica's day). Give each mode and deployment its own "
            "store (another Redis database or EIBERT_CLOUD_REDIS_PREFIX)"
        )


def real_utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class ClockAdvance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_days: int = Field(ge=1, le=MAX_ADVANCE_DAYS)


class ClockPublic(BaseModel):
    today: str  # the cloud's day (UTC date + offset): what budgets are charged on
    utc_date: str  # the real UTC date
    offset_days: int
    report_window_days: int  # reports labelled [today - window, today] are accepted
    advanceable: bool  # dev mode only


class CloudClock:
    """The offset comes from the store, so replicas never disagree. A dev-mode cloud (`advanceable`) reads it on
    every call, since any replica may advance it; any other cloud can never move it, so it reads it once and
    spares every telemetry batch that round trip."""

    def __init__(
        self, store: Store, *, advanceable: bool = True, utc_today: Callable[[], dt.date] = real_utc_today
    ) -> None:
        self.store = store
        self.advanceable = advanceable
        self.utc_today = utc_today
        self._fixed_offset: int | None = None

    async def offset(self) -> int:
        if self.advanceable:
            return await self.store.clock_offset()
        if self._fixed_offset is None:
            self._fixed_offset = await self.store.clock_offset()
        return self._fixed_offset

    async def today(self) -> dt.date:
        return self.utc_today() + dt.timedelta(days=await self.offset())

    async def advance(self, days: int) -> dt.date:
        offset = await self.store.advance_clock(days)
        return self.utc_today() + dt.timedelta(days=offset)

    async def public(self, *, report_window_days: int, advanceable: bool) -> ClockPublic:
        offset = await self.offset()
        utc = self.utc_today()
        return ClockPublic(
            today=(utc + dt.timedelta(days=offset)).isoformat(),
            utc_date=utc.isoformat(),
            offset_days=offset,
            report_window_days=report_window_days,
            advanceable=advanceable,
        )
