"""The one stack runner: a free port, a server process (`python -m service.cloud`, `python -m service.edge`,
`redis-server`), a bounded wait for readiness and a clean stop. The benchmarks, `make load`, the demo and the
tests' helpers all start their servers here, so a startup failure reads the same everywhere: the command, its
exit status and the tail of its log, instead of a silent timeout.

    with service_process("cloud", ["--dev", "--port", str(port)], port=port, log_path=logs / "cloud.log") as cloud:
        ...  # cloud.url answers /readyz with 200 here; the process is stopped (SIGTERM, then SIGKILL) on exit
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Literal

import httpx

ROOT = Path(__file__).resolve().parents[2]  # the repository root: servers run from here
HOST = "127.0.0.1"
STARTUP_S = 120.0  # how long a server may take to be ready (the fp32 teacher bundle loads in seconds)
STOP_S = 30.0  # how long a server may take to stop on SIGTERM before it is killed
POLL_S = 0.05
LOG_TAIL_CHARS = 3000

Probe = Callable[[], bool]


def free_port(host: str = HOST) -> int:
    """A port the kernel just had free on `host` (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str) -> Probe:
    """Ready when GET `url` answers 200; a refused or timed-out connection is "not yet"."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def redis_ping(port: int, host: str = HOST) -> Probe:
    """Ready when Redis answers PING (not while it is still loading its append-only file)."""
    import redis

    def probe() -> bool:
        client = redis.Redis(host=host, port=port, socket_timeout=2.0)
        try:
            return bool(client.ping())
        except redis.RedisError:  # ConnectionError, BusyLoadingError (a subclass), timeouts
            return False
        finally:
            client.close()

    return probe


def wait_until(
    probe: Probe,
    what: str,
    *,
    timeout_s: float = STARTUP_S,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll `probe` until it holds; raise RuntimeError at the deadline, or at once (with the log's tail) if
    `proc` exits first: a server that crashed on startup is reported, not waited for."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: {proc.args!r} exited with {proc.returncode} during startup{_tail(log_path)}")
        if probe():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s{_tail(log_path)}")
        time.sleep(POLL_S)


def _tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    return f" (log {log_path}):\n{log_path.read_text(errors='replace')[-LOG_TAIL_CHARS:]}"


@dataclass
class ServerProcess:
    """One server as a child process: `start`, `wait_ready`, `stop` (or `kill`, a crash); a context manager
    that yields it ready and always stops it. It can be started again after a stop (a restart), on the same
    port; the first start truncates the log, a restart appends to it."""

    name: str
    argv: list[str]
    _: KW_ONLY
    probe: Probe
    url: str = ""
    port: int = 0
    env: dict[str, str] | None = None  # None: this process's environment
    log_path: Path | None = None  # None: output discarded (and no log tail in errors)
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.env is None:
            self.env = dict(os.environ)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> None:
        if self.log_path is None:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)  # fmt: skip
        else:
            with self.log_path.open("ab" if self._started else "wb") as out:
                self.proc = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
                )
        self._started = True

    def wait_ready(self, timeout_s: float = STARTUP_S) -> None:
        wait_until(self.probe, self.name, timeout_s=timeout_s, proc=self.proc, log_path=self.log_path)

    def stop(self, timeout_s: float = STOP_S) -> int | None:
        """SIGTERM, wait, SIGKILL only if it will not stop; the exit status (None if it was not running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to flush anything that was not already on disk."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def service_process(
    name: Literal["cloud", "edge"],
    args: list[str],
    *,
    port: int,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    host: str = HOST,
) -> ServerProcess:
    """`python -m service.<name> <args>` (the flags of `eibert <name>`; `args` must carry `--port port`),
    ready once its /readyz answers 200."""
    url = f"http://{host}:{port}"
    argv = [sys.executable, "-m", f"service.{name}", *args]
    return ServerProcess(name, argv, probe=http_ok(f"{url}/readyz"), url=url, port=port, env=env, log_path=log_path)


def redis_process(
    data_dir: Path,
    *,
    durable: bool = True,
    appendfsync: str = "always",
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> ServerProcess:
    """A private `redis-server` on 127.0.0.1 keeping its files in `data_dir`, never the shared instance.
    `durable`: append-only file on, with `appendfsync` (always | everysec | no); no RDB snapshots either way.
    Its `url` is the store URL of database 0."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; a private Redis needs it")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port() if port is None else port
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(data_dir), "--save", ""]
    argv += ["--daemonize", "no", "--loglevel", "warning"]
    argv += ["--appendonly", "yes", "--appendfsync", appendfsync] if durable else ["--appendonly", "no"]
    url = f"redis://{HOST}:{port}/0"
    return ServerProcess("redis", argv, probe=redis_ping(port), url=url, port=port, env=env, log_path=log_path)
