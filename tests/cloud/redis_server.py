"""A private redis-server for tests that must kill or restart Redis (never the shared 6379 instance), started
and awaited by the one stack runner (`service.devstack.processes`); a failure to start fails the test, naming why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.devstack.processes import ServerProcess, redis_process

START_S = 10.0  # bounded wait for the server to accept connections (it replays its append-only file first)


class RedisProcess:
    def __init__(
        self, data_dir: Path, *, durable: bool, appendfsync: str = "always", preload: Path | None = None
    ) -> None:
        """`durable`: append-only file on, with `appendfsync` (always | everysec | no); off otherwise.
        `preload`: a shared library for LD_PRELOAD (the power-loss shim of the durability tests)."""
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed; the Redis durability tests need it")
        env = dict(os.environ)
        if preload is not None:
            env["LD_PRELOAD"] = str(preload)
        self.server: ServerProcess = redis_process(data_dir, durable=durable, appendfsync=appendfsync, env=env)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.server.proc

    def start(self) -> None:
        """Start (or restart, on the same port and data dir) and wait until it answers PING."""
        self.server.start()
        try:
            self.server.wait_ready(START_S)
        except RuntimeError as exc:
            self.kill()
            pytest.fail(f"private redis-server on port {self.port} did not start: {exc}")

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush anything that was not already on disk."""
        self.server.kill()
