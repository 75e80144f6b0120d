"""uvicorn's HTTP protocol with read deadlines: the one private API of the web server SuperKart uses.

Imports uvicorn and httptools (the serve extra). uvicorn takes a protocol class by import path in
its ``http`` setting (public); what the subclass relies on (the parser callbacks, ``transport``
and ``loop`` attributes) is internal, hence the version guard in :func:`http_protocol`.
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
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timing = ""  # what the armed timer waits for: "head", "body" or nothing
        self._reading = ""  # where the parser is: "head", "body" or between requests
        self._head_timeout = _deadline(HEAD_TIMEOUT_ENV, 10.0)
        self._body_timeout = _deadline(BODY_TIMEOUT_ENV, 60.0)

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

    def on_message_complete(self) -> None:
        self._reading = ""
        super().on_message_complete()
