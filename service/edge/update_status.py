"""What the model updater last did, as GET /v1/model, /readyz and /metrics show it.

A failed update leaves the old model serving and shows up here, with its stage; so do a refused enrolment (the
node is then not ready: it can never follow a rollout) and a node that serves something other than the offer it
accepted (after a restart whose accepted bundle is gone: `stale` until a poll brings it again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from service.edge.schemas import UpdateStatusPublic
from service.edge.update_protocol import Freshness, TrustedState


@dataclass
class UpdateStatus:
    enabled: bool
    state: str = "idle"
    last_check: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_stage: str | None = None
    consecutive_failures: int = 0
    offered_version: str | None = None
    history: list[str] = field(default_factory=list)  # release ids swapped in by this updater, oldest first
    trusted: TrustedState | None = None  # the newest accepted signed offer
    enrolment_refused: str | None = None  # why the cloud refused to enrol this node (it then cannot update)
    behind: bool = False  # serving something other than the accepted offer, which is not on disk to restore
    freshness: Callable[[], Freshness] | None = None  # None: updates disabled, nothing can be stale

    def public(self) -> UpdateStatusPublic:
        fresh = self.freshness() if self.freshness is not None else None
        stale = fresh is not None and (fresh.stale or self.behind)
        t = self.trusted
        return UpdateStatusPublic(
            enabled=self.enabled,
            # A failure says more than "stale" (its stage is shown); anything that would claim all is well does not.
            state="stale" if stale and self.state in ("idle", "up_to_date", "updated") else self.state,
            stale=stale,
            metadata_age_s=round(fresh.age_s, 3) if fresh is not None else None,
            generation=t.generation if t is not None else None,
            metadata_issued=_iso(t.issued) if t is not None else None,
            metadata_expires=_iso(t.expires) if t is not None else None,
            last_check=self.last_check,
            last_success=self.last_success,
            last_error=self.last_error,
            last_error_stage=self.last_error_stage,
            consecutive_failures=self.consecutive_failures,
            offered_version=self.offered_version,
        )


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")
