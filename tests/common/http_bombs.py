"""An impostor cloud on loopback and the answers it sends, built at test time (nothing large is committed).

`ImpostorCloud` is a real HTTP server (the standard library's, in a thread) on 127.0.0.1 that answers every
request with whatever the test set: a device reaches it over a real socket exactly as it would reach a man in
the middle. `gzip_bomb` makes a body that is small on the wire and huge once inflated.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MIB = 1024 * 1024


@cache
def gzip_bomb(inflated_bytes: int = 256 * MIB) -> bytes:
    """gzip of `inflated_bytes` zero bytes: 256 MiB compress to about 260 KB (made once per test process)."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(MIB)
    parts = [z.compress(block) for _ in range(inflated_bytes // MIB)]
    parts.append(z.flush())
    return b"".join(parts)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: bytes = b"{}"
    declare_length: bool = True  # False: no Content-Length, the body runs until the server closes the connection


@dataclass
class ImpostorCloud:
    """Every request gets `answer`; `requests` records (method, path, headers) of what devices sent."""

    answer: Answer = field(default_factory=Answer)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


@contextmanager
def impostor_cloud(answer: Answer) -> Iterator[ImpostorCloud]:
    cloud = ImpostorCloud(answer=answer)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            cloud.requests.append((self.command, self.path, dict(self.headers.items())))
            a = cloud.answer
            self.send_response(a.status)
            for name, value in a.headers.items():
                self.send_header(name, value)
            if a.declare_length:
                self.send_header("Content-Length", str(len(a.body)))
            else:
                self.close_connection = True
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the device stopped reading, as it should
                self.wfile.write(a.body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cloud.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="impostor-cloud", daemon=True)
    thread.start()
    try:
        yield cloud
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def bomb_answer(inflated_bytes: int = 256 * MIB) -> Answer:
    """A 200 JSON answer sent gzip-encoded, whatever the device asked for."""
    return Answer(
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, body=gzip_bomb(inflated_bytes)
    )
