"""Every failed call of a simulated fleet, counted by what caused it, so no failure is absorbed unexplained.

A call fails when a request raises, when the cloud answers >= 400, when a rank call fails (in process or over
HTTP), when a downloaded bundle is refused, or when a device-level step fails without any failed request under
it (an unreadable answer, a device's own bug). Each failure gets a cause:

- `drop`: the fault injector dropped the connection (it raised the error itself);
- `cloud-restart`: the request failed while the fleet had the cloud process down, from the stop until the
  cloud's first answer below 500 (the transport sees both ends, so the window is measured, not guessed);
- `bitflip` / `truncate`: a bundle refused by verification while a corrupted download of that kind was still
  unclaimed (each corrupted download explains one refusal, never more);
- `unexplained`: anything else. A run with any unexplained failure fails its check, and the first few of each
  call are kept with their message so a person can see what went wrong (e.g. "rank: HTTP 422 ...").

Device-level steps run in a `scope()`: the transports add each failure they count to the current scope (a
contextvar, so concurrent devices on one event loop and worker threads started with `asyncio.to_thread` each
see their own), and `step_failed` counts a step only when no request under it already failed: one dropped poll
is one failure, not two.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import Counter
from collections.abc import Iterator

from pydantic import BaseModel, Field

UNEXPLAINED = "unexplained"
MAX_EXAMPLES = 10
MAX_EXAMPLES_PER_CALL = 3  # so that one noisy cause (2,000 refused enrolments) cannot hide another
EXAMPLE_CHARS = 300

_scope: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("eibert_sim_failure_scope", default=None)


class FailureSummary(BaseModel):
    """Failed calls: call -> cause -> count, the totals, and the first unexplained ones with their message."""

    by_call: dict[str, dict[str, int]] = Field(default_factory=dict)
    explained: int = 0
    unexplained: int = 0
    unexplained_examples: list[str] = Field(default_factory=list)


class FailureLedger:
    """Thread-safe: the telemetry outbox sends from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._examples: list[str] = []
        self._examples_by_call: Counter[str] = Counter()
        self._corruptions: Counter[str] = Counter()  # corrupted downloads not yet matched to a refusal
        self.outage = False  # the fleet has the cloud process down (set by the fleet, cleared by an answer)

    def add(self, call: str, cause: str | None, detail: str = "") -> None:
        cause = cause or UNEXPLAINED
        with self._lock:
            self._counts[(call, cause)] += 1
            if (
                cause == UNEXPLAINED
                and len(self._examples) < MAX_EXAMPLES
                and self._examples_by_call[call] < MAX_EXAMPLES_PER_CALL
            ):
                self._examples_by_call[call] += 1
                self._examples.append(f"{call}: {detail}"[:EXAMPLE_CHARS])
        scope = _scope.get()
        if scope is not None:
            scope.append(cause)

    # -- the cloud restart window -------------------------------------------------------------------------

    def outage_begins(self) -> None:
        self.outage = True

    def answered(self, status: int) -> None:
        """A response arrived: below 500 it ends an outage (the cloud is back)."""
        if status < 500:
            self.outage = False

    def transport_cause(self) -> str | None:
        return "cloud-restart" if self.outage else None

    # -- corrupted downloads ------------------------------------------------------------------------------

    def corrupted(self, kind: str) -> None:
        with self._lock:
            self._corruptions[kind] += 1

    def refused_bundle(self, detail: str) -> None:
        """A downloaded bundle was refused by verification: explained by one unclaimed corruption, if any."""
        with self._lock:
            kind = next((k for k, n in sorted(self._corruptions.items()) if n > 0), None)
            if kind is not None:
                self._corruptions[kind] -= 1
        self.add("verify", kind, detail)

    # -- device-level steps -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def scope(self) -> Iterator[list[str]]:
        """Collect the causes of the failures counted inside (by the transports or by `add`)."""
        seen: list[str] = []
        token = _scope.set(seen)
        try:
            yield seen
        finally:
            _scope.reset(token)

    def step_failed(self, seen: list[str], call: str, detail: str) -> None:
        """A device-level step failed: count it only if no failure under it was counted already."""
        if not seen:
            self.add(call, None, detail)

    # -- reading ------------------------------------------------------------------------------------------

    def count(self, call: str | None = None, cause: str | None = None) -> int:
        with self._lock:
            return sum(
                n for (c, k), n in self._counts.items() if (call is None or c == call) and (cause is None or k == cause)
            )

    def summary(self) -> FailureSummary:
        with self._lock:
            by_call: dict[str, dict[str, int]] = {}
            for (call, cause), n in sorted(self._counts.items()):
                by_call.setdefault(call, {})[cause] = n
            unexplained = sum(n for (_, k), n in self._counts.items() if k == UNEXPLAINED)
            total = sum(self._counts.values())
            return FailureSummary(
                by_call=by_call,
                explained=total - unexplained,
                unexplained=unexplained,
                unexplained_examples=list(self._examples),
            )
