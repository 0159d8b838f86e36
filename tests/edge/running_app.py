"""Run an edge app in-process for async tests: its lifespan, plus an httpx client over the ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            yield client


async def first_check_done(updater) -> None:
    """Wait (bounded) until the updater's background loop has finished its first check and let go of its lock,
    so a test's own `check_once` calls are not raced by it."""
    import asyncio

    for _ in range(4000):
        if updater.status.last_check is not None and not updater._lock.locked():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the updater's first check never finished")
