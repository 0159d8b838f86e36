"""Stopping the edge node's background tasks (collector, updater, telemetry flush) the one way that cannot leak.

`task.cancel()` alone returns before the task has unwound; a lifespan that exits then can close the HTTP
client or the executor under a task still using it. Awaiting the cancelled task (and swallowing only its own
CancelledError) makes `stop()` mean stopped.
"""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel `task` (None: nothing to do) and return once it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
