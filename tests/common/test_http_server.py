"""Slow clients against a real edge process (`python -m service.edge`) over real sockets: a request must arrive,
headers and then body, within its deadlines, or its connection is closed; honest requests pass meanwhile."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.common.http_server import ServerLimits, http_server_options
from service.devstack.processes import free_port, service_process

HEADER_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 4.0
TRICKLE_EVERY_S = 0.5  # the attack sends a byte every 2 s; faster here, so a test-sized timeout shows it
CONNECTIONS = 100


@pytest.fixture(scope="module")
def edge(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("slow-clients")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EIBERT_EDGE_")}
    env |= {
        "EIBERT_EDGE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "EIBERT_EDGE_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
        "EIBERT_EDGE_STATE_DIR": str(root / "state"),
    }
    port = free_port()
    args = ["--bundle", str(tiny_bundle), "--port", str(port)]
    with service_process("edge", args, port=port, env=env, log_path=root / "edge.log") as proc:
        yield proc.url


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _trickle(sock: socket.socket, data: bytes, closed_at: list[float], start: float) -> None:
    """Send `data` a byte at a time; note when the server closed the connection (a send fails or EOF)."""
    sock.settimeout(TRICKLE_EVERY_S)
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1024) == b"":
                break
        except TimeoutError:
            continue  # nothing from the server yet: it is still waiting for us
        except OSError:
            break
        else:
            break  # it answered (a 408) and closes
    closed_at.append(time.monotonic() - start)
    sock.close()


def _attack(url: str, data: bytes) -> tuple[list[float], list[int]]:
    """CONNECTIONS trickling clients at once, and an honest GET every 0.5 s while they run."""
    closed_at: list[float] = []
    start = time.monotonic()
    threads = [
        threading.Thread(target=_trickle, args=(_connect(url), data, closed_at, start), daemon=True)
        for _ in range(CONNECTIONS)
    ]
    for t in threads:
        t.start()
    honest: list[int] = []
    while any(t.is_alive() for t in threads) and time.monotonic() - start < 30:
        honest.append(httpx.post(f"{url}/v1/encode", json={"texts": ["honest"]}, timeout=5).status_code)
        time.sleep(0.5)
    for t in threads:
        t.join(1)
    return closed_at, honest


def test_headers_that_trickle_in_are_cut_off_at_the_header_deadline(edge: str) -> None:
    """Issue 22: 100 connections sending a byte every 2 s each held a descriptor (none closed in 40 s)."""
    closed_at, honest = _attack(edge, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200)
    # `pytest -s` shows the figures the issue asked for: where the attack stops, and how honest requests fared
    print(
        f"\n{len(closed_at)} trickling connections closed after {min(closed_at):.2f}-{max(closed_at):.2f} s "
        f"(header_timeout_s={HEADER_TIMEOUT_S:g}); honest requests meanwhile: {honest}"
    )
    assert len(closed_at) == CONNECTIONS
    assert max(closed_at) < HEADER_TIMEOUT_S + 2.0, f"last closed after {max(closed_at):.1f} s"
    assert min(closed_at) >= HEADER_TIMEOUT_S - 0.1
    assert honest and set(honest) == {200}


def test_a_body_that_trickles_in_is_cut_off_at_the_request_deadline(edge: str) -> None:
    head = b"POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    closed_at: list[float] = []
    start = time.monotonic()
    sock = _connect(edge)
    sock.sendall(head)
    _trickle(sock, b'{"texts": ["' + b"a" * 380, closed_at, start)
    assert REQUEST_TIMEOUT_S - 0.1 <= closed_at[0] < REQUEST_TIMEOUT_S + 2.0


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(edge: str) -> None:
    sock = _connect(edge)
    start = time.monotonic()
    answer = sock.recv(1024)  # a kept-open socket would time out here (30 s)
    assert answer.startswith(b"HTTP/1.1 408") and sock.recv(1024) == b""  # then the server closes it
    assert HEADER_TIMEOUT_S - 0.1 <= time.monotonic() - start < HEADER_TIMEOUT_S + 2.0


def test_oversized_headers_are_refused_with_431(edge: str) -> None:
    sock = _connect(edge)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (ServerLimits().max_header_bytes + 10))
    assert sock.recv(1024).startswith(b"HTTP/1.1 431")


def test_a_body_arriving_with_its_headers_does_not_count_as_headers(edge: str) -> None:
    """Headers and a 600 KB body in one write (the server reads up to 256 KiB at once): only the headers count
    against max_header_bytes. An upload through a busy cloud was refused with 431 before."""
    body = json.dumps({"texts": ["\u00e9" * 2000] * 50}).encode()  # \u00e9 escapes: 6 bytes a character
    assert len(body) > 8 * ServerLimits().max_header_bytes
    head = f"POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
    sock = _connect(edge)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    sock.close()


def test_honest_keep_alive_requests_pass(edge: str) -> None:
    with httpx.Client(base_url=edge) as client:
        for _ in range(3):
            assert client.post("/v1/encode", json={"texts": ["a", "b"]}).status_code == 200
            time.sleep(HEADER_TIMEOUT_S / 2)  # idle between requests: keep-alive's business, not a deadline
        assert client.get("/healthz").status_code == 200


def test_proxy_headers_are_believed_from_configured_proxies_only() -> None:
    assert http_server_options(ServerLimits())["proxy_headers"] is False
    trusted = http_server_options(ServerLimits(trusted_proxies=("10.0.0.2",)))
    assert trusted["proxy_headers"] is True and trusted["forwarded_allow_ips"] == ["10.0.0.2"]


def test_headers_and_a_large_body_in_one_write_are_not_a_431(edge: str) -> None:
    """An upload's headers and the start of its body often arrive in one read; only the headers count."""
    body = b'{"texts": ["' + b"x" * 150_000 + b'"]}'  # far past max_header_bytes (64 KiB), one sendall
    head = f"POST /v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    sock = _connect(edge)
    sock.sendall(head.encode() + b"\r\n" + body)
    answer = sock.recv(64)
    sock.close()
    assert not answer.startswith(b"HTTP/1.1 431"), answer  # a 422 (the text is too long) or a 413 is fine
