"""A private redis-server for tests that must kill or restart Redis (never the shared 6379 instance)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    def __init__(
        self, data_dir: Path, *, durable: bool, appendfsync: str = "always", preload: Path | None = None
    ) -> None:
        """`durable`: append-only file on, with `appendfsync` (always | everysec | no); off otherwise.
        `preload`: a shared library for LD_PRELOAD (the power-loss shim of the durability tests)."""
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed; the Redis durability tests need it")
        self.data_dir = data_dir
        self.durable = durable
        self.appendfsync = appendfsync
        self.preload = preload
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir)]
        args += ["--save", "", "--daemonize", "no", "--loglevel", "warning"]
        args += ["--appendonly", "yes", "--appendfsync", self.appendfsync] if self.durable else ["--appendonly", "no"]
        env = dict(os.environ)
        if self.preload is not None:
            env["LD_PRELOAD"] = str(self.preload)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        client = redis.Redis(port=self.port)
        for _ in range(200):  # bounded wait for the server to accept connections
            try:
                if client.ping():
                    client.close()
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        self.kill()
        pytest.fail(f"private redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush anything that was not already on disk."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
