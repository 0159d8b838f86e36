"""`cancel_and_wait`: stop means stopped (the task's own cleanup has run), not merely asked to stop."""

from __future__ import annotations

import asyncio

from service.edge.tasks import cancel_and_wait


async def _worker(cleaned: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.01)  # cleanup that itself awaits: a bare cancel() returns before it has run
        cleaned.append("done")


def test_the_task_has_unwound_when_it_returns() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        waited: list[str] = []
        task = asyncio.create_task(_worker(waited))
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        assert task.done()
        bare: list[str] = []
        other = asyncio.create_task(_worker(bare))
        await asyncio.sleep(0)
        other.cancel()  # what the helper replaces: the check below would not hold after a bare cancel
        snapshot = list(bare)
        await asyncio.gather(other, return_exceptions=True)
        return waited, snapshot

    waited, bare_snapshot = asyncio.run(scenario())
    assert waited == ["done"]
    assert bare_snapshot == []


def test_none_and_finished_tasks_are_fine() -> None:
    async def scenario() -> None:
        await cancel_and_wait(None)
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        await cancel_and_wait(task)

    asyncio.run(scenario())
