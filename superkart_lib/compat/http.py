"""uvicorn's HTTP protocol with read deadlines and a stop that loses no request.

Imports uvicorn and httptools (the serve extra). uvicorn takes a protocol class by import path in
its ``http`` setting (public); what the subclass relies on (the parser callbacks, ``transport``,
``loop`` and ``cycle`` attributes, ``shutdown``) is internal, hence the version guard in
:func:`http_protocol`. The server around it (the drain before a stop) is :mod:`.serving`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from superkart_lib.compat import checked

_MESSAGE = b"the request head did not arrive in time"
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE)
)


#: Environment variables carrying the connection deadlines to every worker process (set by ``run_server``).
HEAD_TIMEOUT_ENV = "SUPERKART_HEAD_TIMEOUT"
BODY_TIMEOUT_ENV = "SUPERKART_BODY_TIMEOUT"
#: Import path of :class:`GuardedHttpProtocol`, as uvicorn's ``http`` setting takes it in every worker.
GUARDED_HTTP = "superkart_lib.compat.http:GuardedHttpProtocol"
#: Seconds between a stopping worker closing its listening socket and asking each open connection's
#: client to close (and between that and closing a connection that stays idle). Sibling workers
#: close their copies of the shared socket within a fraction of a second of each other; a client
#: told to reconnect before they all have could land in a sibling's accept queue as it closes.
SETTLE_SECONDS = 0.5


def http_protocol() -> str:
    """uvicorn's ``http`` setting: the guarded protocol under checked uvicorn versions, else plain httptools.

    Plain httptools still has uvicorn's keep-alive timeout, but no deadline for a request's head
    or body (a stalled client holds its connection until it goes away).
    """
    return GUARDED_HTTP if checked("uvicorn") else "httptools"


def _deadline(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    return float(text) if text else default


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for reading a request: its head, then its body.

    uvicorn times out only idle keep-alive connections; a client that opens a connection and
    never finishes its headers (or its body) keeps it for ever, and enough of them exhaust the
    worker's connections. Here a request's head must arrive within ``SUPERKART_HEAD_TIMEOUT``
    seconds of the connection opening (or of the request's first byte on a reused connection),
    and its body within ``SUPERKART_BODY_TIMEOUT`` seconds of its head; otherwise the connection
    is closed (with ``408 Request Timeout`` when no answer has started).

    A timer is armed only when a chunk of data leaves a request incomplete: a request that
    arrives whole in one read (nearly every prediction) costs no timer at all.

    When the server stops, no request that reached the connection is lost: see :meth:`shutdown`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timing = ""  # what the armed timer waits for: "head", "body" or nothing
        self._reading = ""  # where the parser is: "head", "body" or between requests
        self._head_timeout = _deadline(HEAD_TIMEOUT_ENV, 10.0)
        self._body_timeout = _deadline(BODY_TIMEOUT_ENV, 60.0)
        self._last_answer = False  # the server is stopping: the next answer closes the connection

    def _arm(self, part: str) -> None:
        self._disarm()
        seconds = self._head_timeout if part == "head" else self._body_timeout
        self._timer, self._timing = self.loop.call_later(seconds, self._expired, part), part

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timing = None, ""

    def _expired(self, part: str) -> None:
        self._timer, self._timing = None, ""
        if self.transport.is_closing():
            return
        if part == "head":  # no request is running on this connection yet: say why it closes
            self.transport.write(_TIMED_OUT)
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm("head")  # a connection that never sends a byte is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._reading and self._timing != self._reading:
            self._arm(self._reading)  # a partial request: its part now has a deadline
        elif not self._reading and self._timer is not None:
            self._disarm()  # between requests, uvicorn's keep-alive timeout applies

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = "head"

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._reading = "body"
        if self._last_answer and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "Connection: close", then closed

    def shutdown(self) -> None:
        """The server is stopping (its listening socket is closed): end this connection without losing a request.

        uvicorn closes a connection with no request in progress at once. Under load that loses
        requests: a keep-alive client sends its next request as soon as it has an answer, and a
        request still unread in the socket's buffer dies with the connection (16 to 35 lost per
        stop under the 16 keep-alive clients of tests/test_shutdown.py). Here, after
        :data:`SETTLE_SECONDS`, the request in progress and the next one that arrives are answered
        with ``Connection: close``; a connection that stays idle :data:`SETTLE_SECONDS` more is
        closed. uvicorn's graceful period still bounds it all.
        """
        self.loop.call_later(SETTLE_SECONDS, self._close_after_answer)

    def _close_after_answer(self) -> None:
        if self.transport.is_closing():
            return
        self._last_answer = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        else:
            self.loop.call_later(SETTLE_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        idle = (self.cycle is None or self.cycle.response_complete) and not self._reading
        if idle and not self.transport.is_closing():
            self.transport.close()

    def on_message_complete(self) -> None:
        self._reading = ""
        super().on_message_complete()
