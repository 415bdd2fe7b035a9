"""The service's resource limits: request bodies, read timeouts, and the schema that states them.

:class:`BodyLimit` is an ASGI middleware that reads a request body before the app
parses it: a ``Content-Length`` over the limit is refused at once (413), and
the bytes are counted as they stream in, so a chunked body is refused as soon
as it passes the limit, with no JSON parsed. Each body chunk must arrive within
``read_timeout`` (else 408). :class:`TimedH11Protocol` closes a connection whose
request line and headers do not arrive within ``HEADER_TIMEOUT`` (uvicorn has
no such timeout of its own: its keep-alive timer runs only between requests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HEADER_TIMEOUT", "MAX_BODY_BYTES", "MAX_ID_LENGTH", "READ_TIMEOUT", "BodyLimit",
           "TimedH11Protocol", "server_options"]

MAX_BODY_BYTES = 8 << 20
"""Default largest request body: 10,000 pairs with 256-character ids fit."""
MAX_ID_LENGTH = 256
"""Longest raw id a request may carry, in a path or a body."""
READ_TIMEOUT = 10.0
"""Seconds a request may take between two body chunks."""
HEADER_TIMEOUT = 10.0
"""Seconds a client has to send its request line and headers."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _refuse(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (413) or too slow to arrive (408)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout

    def _too_large(self, size: str) -> str:
        return (f"the request body ({size}) exceeds this server's limit of {self.max_bytes} "
                "bytes\n  hint: split the request into smaller batches")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, 413, "RequestTooLargeError",
                          self._too_large(f"Content-Length {declared[:20].decode('latin-1')}"))
            return
        body = bytearray()
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout)
            except TimeoutError:
                await _refuse(send, 408, "RequestTimeout", f"no body data for "
                              f"{self.read_timeout:g} s\n  hint: send the whole body at once")
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > self.max_bytes:
                await _refuse(send, 413, "RequestTooLargeError",
                              self._too_large(f"over {self.max_bytes} bytes, streamed"))
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose headers do not arrive in time."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _expired(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # still no complete request line and headers

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a new request starts: its headers are on the clock
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()  # the headers are in: keep-alive is uvicorn's job
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def server_options() -> dict[str, Any]:
    """uvicorn settings that bound what one client can hold: timeouts, header size, concurrency."""
    return {"http": TimedH11Protocol, "timeout_keep_alive": 5,
            "h11_max_incomplete_event_size": 16 * 1024, "limit_concurrency": 512,
            "timeout_graceful_shutdown": 5}
