"""The one stack runner: a server is awaited until ready, a crash on startup is reported at once with its log,
a server that never gets ready hits the deadline, and stopping always ends the process."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from service.devstack.processes import ServerProcess, free_port, http_ok, redis_process, service_process, wait_until


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_a_server_is_ready_inside_and_stopped_after(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    server = ServerProcess("http", argv, probe=http_ok(url + "/"), url=url, log_path=tmp_path / "http.log")
    with server:
        assert http_ok(url + "/")() and server.proc is not None
        proc = server.proc
    assert server.proc is None and proc.poll() is not None


def test_a_crash_on_startup_fails_fast_with_the_log_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: no bundle'); sys.exit(3)"]
    server = ServerProcess("crash", argv, probe=lambda: False, log_path=tmp_path / "crash.log")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"exited with 3 during startup(.|\n)*boom: no bundle"), server:
        pass
    assert time.monotonic() - t0 < 30  # not the 120 s deadline
    assert server.proc is None


def test_a_server_that_never_gets_ready_hits_the_deadline(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    server = ServerProcess("sleeper", argv, probe=lambda: False)
    server.start()
    try:
        with pytest.raises(RuntimeError, match="sleeper was not ready within 0 s"):
            server.wait_ready(timeout_s=0.2)
    finally:
        assert server.stop(timeout_s=5) is not None
    with pytest.raises(RuntimeError, match="not ready"):
        wait_until(lambda: False, "nothing", timeout_s=0.1)


def test_service_and_redis_commands(tmp_path: Path) -> None:
    cloud = service_process("cloud", ["--port", "8123"], port=8123)
    assert cloud.argv == [sys.executable, "-m", "service.cloud", "--port", "8123"]
    assert cloud.url == "http://127.0.0.1:8123"
    store = redis_process(tmp_path / "r", durable=False, port=7001)
    assert store.url == "redis://127.0.0.1:7001/0" and "--appendonly" in store.argv
    assert store.argv[store.argv.index("--appendonly") + 1] == "no"
