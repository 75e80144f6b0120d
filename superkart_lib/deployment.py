"""A served model from Python: start ``superkart serve`` as a real process, call it, time it.

Used by the deployment notebook and the benchmarks; stdlib HTTP only, so it also
works in the production environment.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from superkart_lib.errors import SuperKartError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url``; returns (status, decoded JSON body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Terminate ``process``, wait for it, and kill it if it does not stop in ``timeout`` s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class ServerProcess:
    """``superkart serve`` running in a child process on a loopback port.

    Parameters
    ----------
    package_dir : path
        The model package to serve.
    workers : int
        Uvicorn worker processes, one ONNX session each.
    timeout : float
        Seconds to wait for ``/readyz``.
    """

    def __init__(self, package_dir: str | Path, workers: int = 1, timeout: float = 60.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "superkart_lib.cli", "serve", "--model", str(package_dir)]
        command += ["--port", str(self.port), "--workers", str(workers)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        atexit.register(self.stop)  # a notebook interrupted mid-way must not leave a server behind
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                reason = (self._process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
                raise SuperKartError(f"the server exited: {reason[-1] if reason else self._process.returncode}")
            with contextlib.suppress(OSError):
                if get_json(f"{self.url}/readyz", timeout=2)[0] == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise SuperKartError(f"the server at {self.url} was not ready after {timeout:g} s")

    def stop(self) -> None:
        """Terminate the server (and its workers) and wait for it."""
        stop_process(self._process)
        if self._process.stderr:
            self._process.stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def post_json(url: str, body: Any, timeout: float = 10.0) -> tuple[int, Any]:
    """POST ``body`` as JSON; returns (status, decoded JSON answer)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def latency_table(package_dir: str | Path, url: str, records: list[dict], calls: int = 200):
    """Single-record latency (ms, p50 and p99) three ways, in one run.

    The naive way builds a one-row DataFrame and runs the scikit-learn pipeline per
    request; the production way runs the ONNX session from the dict; the served way adds
    HTTP and validation (one keep-alive-less request per record, as a simple client does).
    """
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from superkart_lib import formats
    from superkart_lib.compare import latency_us
    from superkart_lib.runtime import OnnxModel

    pipeline = formats.load(package_dir, "model.joblib")
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
