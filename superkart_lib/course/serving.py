"""A served model from Python: start ``superkart serve`` as a real process, call it, time it.

Used by the deployment notebook, the tests and the benchmarks; stdlib HTTP only, so it also
works in the production environment.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import SuperKartError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url``; returns (status, decoded JSON body)."""
    return _json_answer(url, timeout)


def post_json(url: str, body: Any, timeout: float = 10.0) -> tuple[int, Any]:
    """POST ``body`` as JSON; returns (status, decoded JSON answer)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    return _json_answer(request, timeout)


def _json_answer(request: str | urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def answers_200(url: str, body: Any = None, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers 200 with JSON right now: a GET, or a JSON POST of ``body`` when given.

    False, not an error, while nothing listens yet or the answer is not JSON: a readiness probe.
    """
    with contextlib.suppress(OSError, ValueError):
        return (get_json(url, timeout) if body is None else post_json(url, body, timeout))[0] == 200
    return False


def stop_process(process: subprocess.Popen, timeout: float = 20.0, group: bool = False) -> None:
    """Terminate ``process``, wait for it, and kill it if it does not stop in ``timeout`` s.

    ``group=True`` is for a process started with ``start_new_session=True`` (a supervisor such as
    gunicorn, uvicorn with workers, nginx): the signals go to its whole process group, and whatever
    is left of the group once the leader is gone (workers of a supervisor that died first) is killed.
    """
    terminate: Callable[[], None] = process.terminate
    kill: Callable[[], None] = process.kill
    if group:
        terminate = functools.partial(_signal_group, process.pid, signal.SIGTERM)
        kill = functools.partial(_signal_group, process.pid, signal.SIGKILL)
    if process.poll() is None:
        terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill()
            process.wait(timeout=10)
    if group:  # the leader is reaped, but its group id stays reserved while any member is alive
        kill()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # PermissionError: macOS, group gone
        os.killpg(pgid, sig)


def wait_until(
    process: subprocess.Popen,
    probe: Callable[[], bool],
    timeout: float,
    streak: int = 1,
    name: str = "the server",
    log: Path | None = None,
) -> None:
    """Poll ``probe`` until it holds ``streak`` times in a row (a server answering on a fresh start).

    Raises
    ------
    SuperKartError
        When ``process`` exits first or ``timeout`` s pass; with the text of ``log`` when given.
    """
    deadline = time.monotonic() + timeout
    good = 0
    while good < streak:
        if process.poll() is not None:
            raise _not_serving(f"{name} exited with code {process.returncode}", log)
        if time.monotonic() > deadline:
            raise _not_serving(f"{name} was not ready after {timeout:g} s", log)
        if probe():
            good += 1
        else:
            good = 0
            time.sleep(0.1)


def _not_serving(problem: str, log: Path | None) -> SuperKartError:
    output = log.read_text(errors="replace").strip() if log and log.exists() else ""
    return SuperKartError(f"{problem}:\n{output}" if output else problem)


class ServerProcess:
    """``superkart serve`` running in a child process on a loopback port.

    Parameters
    ----------
    package_dir : path
        The model package to serve (with ``registry``, the registry directory).
    workers : int
        Uvicorn worker processes, one ONNX session each.
    timeout : float
        Seconds to wait for ``ready_path``.
    log : path, optional
        File for the server's output, kept; by default a temporary file, removed by :meth:`stop`.
    factory : bool
        Start ``uvicorn --factory`` on the app factory instead, as a process manager
        would: no package check before listening, the model loads (or fails) in the background.
    ready_path : str
        The route that must answer 200 before the server counts as started (``/healthz``: listening).
    registry : bool
        Serve the registry ``package_dir``'s current version and follow it (``superkart serve --registry``).
    """

    def __init__(
        self,
        package_dir: str | Path,
        workers: int = 1,
        timeout: float = 60.0,
        *,
        log: str | Path | None = None,
        factory: bool = False,
        ready_path: str = "/readyz",
        registry: bool = False,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = None
        if factory:
            from superkart_lib.production.server import APP_FACTORY, MODEL_ENV

            env = {**os.environ, MODEL_ENV: str(Path(package_dir).resolve())}
            command = [sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY]
            command += ["--host", "127.0.0.1"]
        else:
            source = "--registry" if registry else "--model"
            command = [sys.executable, "-m", "superkart_lib.cli", "serve", source, str(package_dir)]
            # No load balancer polls this local server's readiness: stop without the drain.
            command += ["--drain-seconds", "0"]
        command += ["--port", str(self.port), "--workers", str(workers)]
        self._own_log = log is None
        if log is None:
            handle, log = tempfile.mkstemp(prefix="superkart-serve-", suffix=".log")
            os.close(handle)
        self.log = Path(log)
        with open(self.log, "wb") as out:
            # Its own process group, so stop() reaches the uvicorn workers even if the supervisor hangs.
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        atexit.register(self.stop)  # a notebook interrupted mid-way must not leave a server behind
        try:
            probe = functools.partial(answers_200, self.url + ready_path)
            wait_until(self._process, probe, timeout, name=f"the server at {self.url}", log=self.log)
        except SuperKartError:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the server (and its workers) and wait for it."""
        stop_process(self._process, group=True)
        atexit.unregister(self.stop)
        if self._own_log:
            self.log.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def latency_table(package_dir: str | Path, url: str, records: list[dict], calls: int = 200):
    """Single-record latency (ms, p50 and p99) three ways, in one run.

    The naive way builds a one-row DataFrame and runs the scikit-learn pipeline per
    request; the production way runs the ONNX session from the dict; the served way adds
    HTTP and validation (one keep-alive-less request per record, as a simple client does).
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from superkart_lib.course.compare import latency_us
    from superkart_lib.development import python_formats
    from superkart_lib.production.runtime import OnnxModel

    pipeline = python_formats.load(package_dir, "model.joblib")
    onnx_model = OnnxModel.from_package(package_dir)
    ways = {
        "naive: pd.DataFrame([record]) + scikit-learn": lambda r: pipeline.predict(pd.DataFrame([r])),
        "ONNX runtime from the dict, in process": onnx_model.predict,
        "HTTP POST /v1/predict to superkart serve": lambda r: post_json(f"{url}/v1/predict", r),
    }
    rows = []
    with threadpool_limits(1):
        for way, predict in ways.items():
            p50, p99 = latency_us(predict, records, calls)
            rows.append({"way": way, "p50_ms": p50 / 1e3, "p99_ms": p99 / 1e3})
    return pd.DataFrame(rows).set_index("way")
