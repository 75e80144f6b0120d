"""uvicorn's server and worker supervisor with a drain before they stop: the signal handling SuperKart changes.

Imports uvicorn (the serve extra). :func:`serve` runs an app as ``uvicorn.run`` does (its
``Config``, one :class:`~uvicorn.server.Server`, or its ``Multiprocess`` supervisor over one bound
socket), but every serving process drains before it stops: on the first SIGTERM or SIGINT it
keeps accepting and answering for a few seconds (the caller's hook marks the app as stopping, so
``/readyz`` turns 503 and load balancers send new traffic elsewhere), then it stops the way uvicorn
does. What this overrides (``Server.handle_exit`` and ``on_tick``, the supervisor's worker
``Process`` and how it starts, signals and joins workers) is internal to uvicorn, hence the
version guard in :func:`drains`; outside the checked versions :func:`serve` is ``uvicorn.run``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from socket import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from superkart_lib.compat import checked

logger = logging.getLogger("uvicorn.error")

#: A hook called in a serving process on its first stop signal; returns the seconds to drain (0: none).
#: It runs inside a signal handler: it must only set flags (no locks, no logging).
StopHook = Callable[[], float]

#: Seconds within which a worker takes a repeated stop signal as the same stop. A signal sent to the
#: whole process group (Ctrl-C in a terminal, systemd's default stop) reaches a worker directly, and
#: again up to half a second later when its supervisor forwards it; only a later one ends the drain.
SAME_STOP_SECONDS = 1.0


def drains() -> bool:
    """Whether :func:`serve` drains before stopping (only under the uvicorn versions checked)."""
    return checked("uvicorn")


def serve(app: str, settings: dict[str, Any], on_stop: StopHook) -> None:
    """Run ``app`` (an import path) as ``uvicorn.run(app, **settings)`` does, draining before a stop.

    Parameters
    ----------
    app : str
        ``module:attribute`` of the app (or of its factory, with ``factory=True`` in ``settings``).
    settings : dict
        ``uvicorn.run``'s keyword arguments (``workers`` among them).
    on_stop : StopHook
        Called in each serving process on its first SIGTERM or SIGINT; the process keeps serving for
        the seconds it returns, then stops accepting and gives in-flight requests uvicorn's
        ``timeout_graceful_shutdown``. A picklable callable (a module-level function or a
        ``functools.partial`` of one): worker processes receive it pickled.

    With one worker the process ends normally after a stop (uvicorn re-raises the signal, so the
    exit status said the process was killed); a server that never started exits with uvicorn's
    startup-failure status, as ``uvicorn.run`` does.
    """
    if not drains():
        uvicorn.run(app, **settings)
        return
    config = Config(app, **settings)
    server: DrainingServer | None = None
    try:
        if config.workers > 1:
            DrainingMultiprocess(config, [config.bind_socket()], on_stop).run()
        else:
            config.load_app()  # an app that cannot be imported stops here, as in uvicorn.run
            server = DrainingServer(config, on_stop)
            server.run()
    except KeyboardInterrupt:  # as uvicorn.run: a Ctrl-C before the signal handlers are in place
        pass
    if server is not None and not server.started:
        sys.exit(STARTUP_FAILURE)


class DrainingServer(Server):
    """uvicorn's server, which drains before it stops.

    The first SIGTERM or SIGINT calls ``on_stop`` and keeps serving (listening included) for the
    seconds it returns; then uvicorn's graceful stop runs. A later signal ends the drain at once
    (one within ``same_stop_seconds`` of the first is the same stop, delivered twice); once
    stopping, another SIGINT forces the exit, as uvicorn's second Ctrl-C does. A signal before
    the server has started stops it at once. The signal is not re-raised after the stop.
    """

    def __init__(self, config: Config, on_stop: StopHook, same_stop_seconds: float = 0.0) -> None:
        super().__init__(config)
        self._on_stop = on_stop
        self._same_stop_seconds = same_stop_seconds
        self._first_signal: float | None = None
        self._drain_until: float | None = None
        self._news = ""  # logged by on_tick: a signal handler may have interrupted logging itself

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._first_signal is None:
            self._first_signal = now
            drain = self._on_stop() if self.started else 0.0
            if drain > 0:
                self._drain_until = now + drain
                self._news = f"Draining for {drain:g} s, then stopping (signal again to stop now)"
            else:
                self.should_exit = True
        elif now - self._first_signal < self._same_stop_seconds:
            return
        elif not self.should_exit:
            self.should_exit = True
            self._news = "Stopping now: the rest of the drain is skipped"
        elif sig == signal.SIGINT:
            self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        news, self._news = self._news, ""
        if news:
            logger.info(news)
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class DrainingProcess(Process):
    """A worker process of :class:`DrainingMultiprocess`: serves with a :class:`DrainingServer`."""

    def __init__(self, config: Config, sockets: list[socket], on_stop: StopHook) -> None:
        self.on_stop = on_stop  # before uvicorn's __init__, which prepares the pickled process
        super().__init__(config, sockets)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = DrainingServer(self.config, self.on_stop, SAME_STOP_SECONDS)
        return self._server


class DrainingMultiprocess(Multiprocess):
    """uvicorn's supervisor, with :class:`DrainingProcess` workers and a stop that reaches them twice.

    Every method that starts a worker is uvicorn 0.54's with :class:`DrainingProcess` for
    ``Process``. On its first SIGTERM or SIGINT the supervisor sends its workers SIGTERM (uvicorn)
    and closes its own copy of the listening socket, so that once the workers close theirs a
    client is refused at once instead of waiting in a queue nobody reads. While it waits for the
    workers, a further SIGTERM or SIGINT is passed on to them (uvicorn ignores it): it ends their
    drain.
    """

    def __init__(self, config: Config, sockets: list[socket], on_stop: StopHook) -> None:
        self.on_stop = on_stop
        super().__init__(config, sockets)

    def _started(self) -> Process:
        process = DrainingProcess(self.config, self.sockets, self.on_stop)
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes.extend(self._started() for _ in range(self.processes_num))

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # broken app, TLS or socket: a restart fails alike
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            self.processes[index] = self._started()

    def restart_all(self) -> None:
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._started()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    logger.error(
                        f"New child process [{new.pid}] was not ready in time; "
                        f"keeping worker [{old.pid}] and aborting the restart."
                    )
                return
            old.terminate()
            old.join()
            self.processes[index] = new

    def handle_ttin(self) -> None:
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.processes_num += 1
        self.processes.append(self._started())

    def terminate_all(self) -> None:
        super().terminate_all()
        for sock in self.sockets:
            sock.close()

    def join_all(self) -> None:
        for process in self.processes:
            logger.info(f"Waiting for child process [{process.pid}]")
            while process.exitcode is None:
                process.process.join(0.1)
                self._pass_on_stop_signals()

    def _pass_on_stop_signals(self) -> None:
        stops = [sig for sig in self.signal_queue if sig in (signal.SIGINT, signal.SIGTERM)]
        self.signal_queue.clear()
        if not stops:
            return
        logger.info(f"Received {signal.Signals(stops[-1]).name} again, passing it on to the workers.")
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, stops[-1])
