"""How both apps meet the network under uvicorn: whom to believe about a client's address, and how long a
request may take to arrive.

Trusted proxies. uvicorn believes `X-Forwarded-For` from 127.0.0.1 by default, so a client on the same host
(or behind a local tunnel) writes its own source address, and the cloud's per-source enrolment limit counts
whatever it writes. Here nobody is trusted unless configured (`trusted_proxies`: the addresses or networks
of the operator's own reverse proxies); then uvicorn's `ProxyHeadersMiddleware` reads the header from those
peers only.

Request deadlines. uvicorn's `timeout_keep_alive` closes a connection idle *between* requests; a request whose
headers or body arrive a byte every few seconds holds its socket (and file descriptor) for as long as the
client likes. `DeadlineProtocol` wraps uvicorn's own protocol (httptools where installed, else h11) and
measures each request from its first byte: its headers must be complete within `header_timeout_s` and be no
more than `max_header_bytes`, and the whole request, body included, must have arrived within
`request_timeout_s`; otherwise the connection is closed (with a 408 or 431 when no response has started). The
protocol learns a request's progress from the state uvicorn keeps anyway (`cycle` is replaced when headers
are complete; `cycle.more_body` turns False when the body is), so it parses nothing itself. A connection that
sends nothing at all is closed after `header_timeout_s` too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger(__name__)

TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
HEADERS_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ServerLimits(BaseModel):
    """What `http_server_options` needs from an app's settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For is believed; none by default
    header_timeout_s: float = Field(default=10.0, gt=0)  # first byte of a request -> its headers complete
    request_timeout_s: float = Field(default=60.0, gt=0)  # first byte -> the whole body received
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)  # request line + headers


class DeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, with a deadline for every request to arrive (see the module docstring)."""

    limits = ServerLimits()  # replaced per server by `deadline_protocol`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._start()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self._between_requests():
            self._start()  # the first byte of the next request on this connection
        if self._in_headers():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._close(HEADERS_431, f"headers longer than {self.limits.max_header_bytes} bytes")
                return
        super().data_received(data)
        self._progress()

    # -- where the current request stands -------------------------------------------------------------------

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _in_headers(self) -> bool:
        return self._deadline is not None and self.cycle is self._before

    def _received(self) -> bool:
        return self.cycle is not self._before and not self.cycle.more_body

    # -- the deadline ---------------------------------------------------------------------------------------

    def _start(self) -> None:
        loop = self.loop
        self._started = loop.time()
        self._before = self.cycle  # replaced by a new cycle once this request's headers are complete
        self._header_bytes = 0
        self._cancel()
        self._deadline = loop.call_at(self._started + self.limits.header_timeout_s, self._expired)

    def _progress(self) -> None:
        if self._deadline is None:
            return
        if self._received():
            self._cancel()
        elif self.cycle is not self._before:  # headers complete: the body gets the rest of the request's time
            self._cancel()
            when = self._started + self.limits.request_timeout_s
            self._deadline = self.loop.call_at(when, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self._received():
            return
        if self.cycle is self._before:
            self._close(TIMEOUT_408, f"headers not complete within {self.limits.header_timeout_s:g}s")
        else:  # the app may be reading the body, or answering already: only the connection can go
            self._close(None, f"body not complete within {self.limits.request_timeout_s:g}s")

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _close(self, answer: bytes | None, why: str) -> None:
        self._cancel()
        log.info("closing the connection from %s: %s", self.client, why)
        if answer is not None and not self.transport.is_closing():
            self.transport.write(answer)
        self.transport.close()


def deadline_protocol(limits: ServerLimits) -> type[DeadlineProtocol]:
    """A `DeadlineProtocol` class bound to `limits` (uvicorn builds one protocol instance per connection)."""
    return type("BoundDeadlineProtocol", (DeadlineProtocol,), {"limits": limits})


def http_server_options(limits: ServerLimits) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.Config`/`uvicorn.run`: the protocol with deadlines, and proxy headers
    believed from the configured proxies only (not at all when there are none)."""
    trusted = list(limits.trusted_proxies)
    return {
        "http": deadline_protocol(limits),
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or [],
        "h11_max_incomplete_event_size": limits.max_header_bytes,
    }
