"""The service's resource limits: request bodies, read timeouts, and the schema that states them.

:class:`BodyLimit` reads a request body before the app parses it, refusing one that is
too big (413), too slow (408) or holds too many batch entries (422) as soon as that is
known, with no JSON parsed. :class:`TimedH11Protocol` closes a connection whose request
line and headers do not arrive within ``HEADER_TIMEOUT`` (uvicorn's keep-alive timer
runs only between requests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
import numpy as np
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "MAX_BODY_BYTES", "MAX_ID_LENGTH",
           "MAX_QUERY_ID_LENGTH", "READ_TIMEOUT",
           "BodyLimit", "TimedH11Protocol", "count_outside_strings", "server_options"]

MAX_BODY_BYTES = 8 << 20
"""Default largest request body: 10,000 pairs with 256-character ids fit."""
MAX_ID_LENGTH = 256
"""Longest raw id a request may carry, in a path or a body."""
MAX_QUERY_ID_LENGTH = 4096
"""Longest raw id ``GET /recommend?user=`` and ``GET /similar?item=`` take."""
READ_TIMEOUT = 10.0
"""Seconds a request may take between two body chunks."""
BODY_TIMEOUT = 30.0
"""Seconds a request body may take in all (8 MiB at 2 Mbit/s)."""
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


def count_outside_strings(body: bytes, byte: int) -> int:
    """How many times ``byte`` occurs in JSON ``body`` outside its strings (vectorised).

    A quote is escaped when an odd run of backslashes precedes it; a byte is
    outside the strings when an even number of unescaped quotes precede it. The
    work is done on the positions of quotes, backslashes and ``byte`` (searches
    NumPy runs without the GIL), never a running sum over every byte, so the
    event loop keeps answering while a big body is counted in a thread.
    """
    data = np.frombuffer(body, dtype=np.uint8)
    quotes = np.flatnonzero(data == 34)
    slashes = np.flatnonzero(data == 92)
    if len(slashes) and len(quotes):  # drop the quotes an odd run of backslashes escapes
        breaks = np.flatnonzero(np.diff(slashes) != 1)
        starts, ends = slashes[np.r_[0, breaks + 1]], slashes[np.r_[breaks, len(slashes) - 1]]
        run = np.minimum(np.searchsorted(ends, quotes - 1), len(ends) - 1)
        quotes = quotes[(ends[run] != quotes - 1) | ((ends[run] - starts[run]) % 2 == 1)]
    return int(np.count_nonzero(np.searchsorted(quotes, np.flatnonzero(data == byte)) % 2 == 0))


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` or ``entries`` (413), or slower than
    ``read_timeout`` between chunks or ``body_timeout`` in all (408).

    Args:
        entries: ``{path: (field, byte, overhead, limit)}``: a POST body to ``path``
            holding ``byte`` outside its strings more than ``overhead + limit`` times
            has over ``limit`` entries in ``field``, and is refused (422, as the app
            refuses a batch over its limit) before it is parsed.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES,
                 read_timeout: float = READ_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 entries: dict[str, tuple[str, int, int, int]] | None = None) -> None:
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout
        self.body_timeout, self.entries = body_timeout, entries or {}

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
        rule = self.entries.get(scope.get("path", "")) if scope.get("method") == "POST" else None
        entries = _Entries(*rule) if rule else None
        body, size, more, deadline = bytearray(), 0, True, time.monotonic() + self.body_timeout
        while more:
            wait = min(self.read_timeout, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                what = (f"no body data for {self.read_timeout:g} s" if wait == self.read_timeout
                        else f"the body did not arrive within {self.body_timeout:g} s")
                await _refuse(send, 408, "RequestTimeout",
                              f"{what}\n  hint: send the whole body at once")
                return
            if message["type"] == "http.disconnect":
                return
            chunk, more = message.get("body", b""), bool(message.get("more_body", False))
            size += len(chunk)
            if size > self.max_bytes:
                await _refuse(send, 413, "RequestTooLargeError",
                              self._too_large(f"over {self.max_bytes} bytes, streamed"))
                return
            if entries is None or not entries.over:  # once over the limit, the rest is not kept
                body += chunk
                if entries is not None:
                    await entries.add(body, chunk, more)
        if entries is not None and entries.over:
            await _refuse(send, 422, "RequestTooLargeError", entries.refusal())
            return
        await self.app(scope, _replay(bytes(body), receive), send)


class _Entries:
    """A batch body's entries, counted as it streams in, so an oversized batch is known early.

    The raw count of the entry byte (strings included) bounds the real count; only
    past ``bound`` is the body so far counted outside its strings, in a thread, and
    again each time it has doubled and at its end: a few 100 KB decide a body of
    many MB, and the total work stays within twice one count.
    """

    def __init__(self, field: str, byte: int, overhead: int, limit: int) -> None:
        self.field, self.byte, self.overhead, self.limit = field, byte, overhead, limit
        self.bound, self.marks, self.checked, self.found = overhead + limit, 0, 0, 0

    @property
    def over(self) -> bool:
        return self.found > self.bound

    def refusal(self) -> str:
        return (f"{self.field}={self.found - self.overhead} (at least) exceeds this server's "
                f"limit of {self.limit}\n  hint: ask for at most {self.limit}, or split the "
                "request")

    async def add(self, body: bytearray, chunk: bytes, more: bool) -> None:
        self.marks += chunk.count(bytes([self.byte]))
        if self.marks > self.bound and (not more or len(body) >= 2 * self.checked):
            self.checked = len(body)
            self.found = await asyncio.to_thread(count_outside_strings, bytes(body), self.byte)


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
