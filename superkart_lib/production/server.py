"""``superkart serve``: the API under uvicorn, one worker process per ONNX session.

Only the standard library is imported here; uvicorn and the app load when a server starts,
so the command line can read the defaults below without importing the web stack.

What keeps a worker healthy whatever its clients do (each is a setting below, tested):

- a request's head must arrive within :data:`HEAD_TIMEOUT` s and its body within
  :data:`BODY_TIMEOUT` s (``408``/closed otherwise); an idle keep-alive connection closes after
  :data:`KEEP_ALIVE_TIMEOUT` s; past ``limits.MAX_CONNECTIONS`` open connections a worker
  answers ``503`` at once instead of queueing;
- a worker does not accept connections until its model is verified, loaded and warm;
- on SIGTERM (or Ctrl-C) a worker first drains: ``/readyz`` answers ``503 stopping`` at once while
  every other request is still accepted and answered for :data:`DRAIN_SECONDS` s, so load
  balancers polling readiness send new traffic elsewhere; then it stops accepting, answers what
  it has (within :data:`GRACE_PERIOD` s) and exits with status 0. A second signal ends the drain
  at once (:mod:`superkart_lib.compat.serving`; under a uvicorn release it was not checked with,
  uvicorn's own stop, without the drain);
- workers stop (gracefully, without the drain) when their supervisor dies, so the port is free
  for a restart.

Several workers share their Prometheus metrics through files in one directory
(:func:`metrics_directory`), emptied at every start so counters begin at zero.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from superkart_lib.contract import limits
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.production import lifecycle

#: Environment variable naming the package directory for :func:`app_from_env` (uvicorn workers).
MODEL_ENV = "SUPERKART_MODEL_DIR"
#: Environment variable set to ``1`` when workers follow the package link (``--registry``).
FOLLOW_ENV = "SUPERKART_FOLLOW"
#: Environment variable holding the supervisor's pid: a worker that outlives it stops.
SUPERVISOR_ENV = "SUPERKART_SUPERVISOR_PID"
#: prometheus-client's directory for several processes' metrics; read when it is first imported.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: ``module:factory`` of the app, for uvicorn and process managers.
APP_FACTORY = "superkart_lib.production.server:app_from_env"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 1
#: Seconds for a request's head (headers) to arrive; a stalled client is cut off after this.
HEAD_TIMEOUT = 10.0
#: Seconds for a request's body to arrive after its head (a 5 MiB upload at 100 KB/s fits).
BODY_TIMEOUT = 60.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_TIMEOUT = 5
#: Seconds a stopping worker gives in-flight requests before closing their connections.
GRACE_PERIOD = 10
#: Seconds a worker keeps accepting and answering after a stop signal, with ``/readyz`` at 503,
#: before it stops accepting (``--drain-seconds``; 0 stops at once, as uvicorn does).
DRAIN_SECONDS = 2.0

# Set in a worker whose supervisor is gone: nobody routes traffic by its readiness any more.
_ORPHANED = threading.Event()
#: Seconds an orphaned worker (its supervisor killed) has to stop gracefully before it exits.
ORPHAN_STOP_SECONDS = 1.0


def app_from_env() -> Any:
    """App factory for uvicorn workers: the package directory comes from ``SUPERKART_MODEL_DIR``."""
    from superkart_lib.production.app import create_app

    package_dir = os.environ.get(MODEL_ENV)
    if not package_dir:
        raise SuperKartError(f"{MODEL_ENV} is not set (use `superkart serve --model DIR`)")
    _log_to_stderr()
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if supervisor.isdigit():
        spawned_by = multiprocessing.parent_process()
        if int(supervisor) == os.getppid():
            stop_with_parent(int(supervisor))
        elif spawned_by is not None and spawned_by.pid == int(supervisor):
            # The supervisor died while this worker was starting: it must not serve, nor hold the port.
            os._exit(0)
    return create_app(package_dir, follow=os.environ.get(FOLLOW_ENV) == "1")


def _log_to_stderr() -> None:
    """Show the service's own log lines (model swaps and refusals) beside uvicorn's, at INFO."""
    logger = logging.getLogger("superkart")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     [%(process)d] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def stop_with_parent(parent: int, interval: float = 0.2) -> None:
    """Send this process SIGTERM (uvicorn's graceful stop) once ``parent`` is no longer its parent.

    The stop gets :data:`ORPHAN_STOP_SECONDS`; a worker still alive then exits at once.

    A worker whose supervisor was killed (SIGKILL leaves it no chance to stop its children)
    would otherwise keep serving and keep the port, so the service could not be restarted.
    Polling the parent pid works on every POSIX system, unlike Linux's PR_SET_PDEATHSIG.
    """

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(interval)
        _ORPHANED.set()  # stop without the drain: the port must be free for a restart
        os.kill(os.getpid(), signal.SIGTERM)
        # A graceful stop waits for open connections; an orphan frees the port within a bound.
        threading.Event().wait(ORPHAN_STOP_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="superkart-parent-watch", daemon=True).start()


def stop_requested(drain_seconds: float) -> float:
    """A serving process's first stop signal: ``/readyz`` turns to 503 ``stopping``; the seconds to drain.

    Runs inside the signal handler (:data:`superkart_lib.compat.serving.StopHook`): it only sets
    flags. Returns 0 in a worker whose supervisor has died (:func:`stop_with_parent`).
    """
    lifecycle.begin_stopping()
    return 0.0 if _ORPHANED.is_set() else drain_seconds


def metrics_directory(workers: int) -> tuple[str | None, bool]:
    """Prepare the directory where workers keep their metrics; set it in the environment for them.

    prometheus-client's multi-process mode: the operator's ``PROMETHEUS_MULTIPROC_DIR`` if set,
    else, with several workers, a fresh temporary directory; one worker alone keeps its metrics in
    memory (``None``). The operator's directory is emptied of metric files first, as the library
    requires: files left by a previous run would add its counts to this one's.

    Returns
    -------
    directory : str or None
        The directory, or None for in-memory metrics.
    temporary : bool
        Whether the directory was made here (and is removed when the server stops).
    """
    directory = os.environ.get(METRICS_DIR_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
        return directory, False
    if workers <= 1:
        return None, False
    directory = tempfile.mkdtemp(prefix="superkart-metrics-")
    os.environ[METRICS_DIR_ENV] = directory
    return directory, True


def _raise_open_files_limit() -> None:
    # Each connection is a file descriptor: the soft limit (often 1,024) must not be what refuses
    # clients before limits.MAX_CONNECTIONS does.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = limits.MAX_CONNECTIONS + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, ceiling), hard))


def run_server(
    package_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = DEFAULT_WORKERS,
    access_log: bool = False,
    head_timeout: float = HEAD_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    follow: bool = False,
    drain_seconds: float = DRAIN_SECONDS,
) -> None:
    """Serve a model package with uvicorn until stopped by SIGTERM or SIGINT (drained first).

    The package is verified here first, so a bad package is one clear error before any
    worker starts; each worker process then builds its own app and ONNX session.

    ``package_dir`` may be a link to a version directory. Without ``follow`` it is resolved
    here, once: the server keeps the version it started with. With ``follow`` (a registry's
    ``current``) every worker keeps watching the link and swaps to each version it comes to
    point at, with no restart and no failed request (:class:`~.model_state.LinkFollower`).

    On a stop signal each worker drains for ``drain_seconds`` (``/readyz`` answers 503, every
    other request is answered), then stops accepting and finishes its requests within
    :data:`GRACE_PERIOD` s; the command then returns (exit status 0).

    Raises
    ------
    SuperKartError
        When the package is missing, altered or cannot be loaded, the address is taken, or
        ``drain_seconds`` is negative.
    """
    from superkart_lib.compat import http, serving
    from superkart_lib.production.runtime import OnnxModel

    if not 0 <= drain_seconds < float("inf"):
        raise SuperKartError(f"the drain must be 0 or more seconds, not {drain_seconds!r}")
    directory = Path(os.path.abspath(package_dir)) if follow else Path(package_dir).resolve()
    OnnxModel.from_package(directory)
    try:  # uvicorn reports a busy port as a log line and exit 1; say it as the CLI says errors
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise SuperKartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    _raise_open_files_limit()
    # Workers are fresh interpreters: what they need travels in the environment.
    os.environ[MODEL_ENV] = str(directory)
    os.environ[FOLLOW_ENV] = "1" if follow else "0"
    os.environ[http.HEAD_TIMEOUT_ENV] = str(head_timeout)
    os.environ[http.BODY_TIMEOUT_ENV] = str(body_timeout)
    if workers > 1:
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
    metrics_dir, temporary = metrics_directory(workers)
    settings = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "access_log": access_log,
        "log_level": "info",
        "http": http.http_protocol(),
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,
        "limit_concurrency": limits.MAX_CONNECTIONS,
        "timeout_graceful_shutdown": GRACE_PERIOD,
    }
    try:
        serving.serve(APP_FACTORY, settings, functools.partial(stop_requested, drain_seconds))
    finally:
        if temporary and metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
