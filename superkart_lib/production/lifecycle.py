"""Whether this server process is stopping: set once on the first stop signal, read by ``/readyz``.

One flag per process (each uvicorn worker is its own process). The server's signal handling sets
it (:func:`superkart_lib.production.server.stop_requested`); the app only reads it, so the app
needs nothing from uvicorn. Once set it stays set: a stopping process never becomes ready again.
"""

from __future__ import annotations

import threading

_STOPPING = threading.Event()


def begin_stopping() -> None:
    """Mark this process as stopping: ``/readyz`` answers 503 ``stopping`` from now on."""
    _STOPPING.set()


def stopping() -> bool:
    """Whether this process has been asked to stop."""
    return _STOPPING.is_set()
