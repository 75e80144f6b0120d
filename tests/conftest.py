"""Shared fixtures and helpers: the command line, trained packages, live servers, the production import rule."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Seconds a server process may take to answer (loading onnxruntime and the model included).
STARTUP_TIMEOUT = 90.0
#: Top-level modules the production environment does not have: code that must run there runs with them blocked.
TRAINING_STACK = (
    "pandas",
    "sklearn",
    "scipy",
    "skl2onnx",
    "onnxmltools",
    "xgboost",
    "joblib",
    "cloudpickle",
    "skops",
    "dask",
    "distributed",
    "tqdm",
    "matplotlib",
)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``superkart ARGS`` in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "superkart_lib.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )


def run_without_training_stack(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a fresh interpreter where importing any of :data:`TRAINING_STACK` fails.

    The development environment has those libraries; this proves a path never reaches for them.
    """
    blocker = f"""
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {set(TRAINING_STACK)!r}:
            raise ImportError(f"{{name}} is not in the production environment")
sys.meta_path.insert(0, _Blocked())
"""
    return subprocess.run(
        [sys.executable, "-c", blocker + code, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def make_package(
    out: Path, family: str = "decision_tree", rows: int = 2_000, seed: int = 3, facts: dict[str, Any] | None = None
) -> Path:
    """A real model package in seconds: one model family, no search, on synthetic rows.

    ``facts`` overrides the training-data facts the manifest records (by default the synthetic
    data's own, so its test split can be rebuilt).
    """
    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.package import write_package
    from superkart_lib.development.train import train

    frame, own_facts = load_training_data(None, rows=rows, seed=seed)
    result = train(frame, seed=0, n_iter=0, families=[family], n_jobs=1)
    return write_package(result, out, facts or own_facts, frame=frame)


def flip_one_byte(path: Path) -> None:
    """Corrupt a file the way a bad disk or a tamperer would: one byte in the middle."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def dockerfile_lines(path: Path) -> list[str]:
    """Logical lines (continuations joined, comments and blank lines dropped)."""
    lines, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def json_records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a DataFrame as a client sends them: plain JSON values."""
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


def to_csv(rows: list[dict], columns: list[str] | None = None) -> bytes:
    """Records as CSV bytes with a header, as a user's file would be."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@contextlib.contextmanager
def live_server(
    package: Path, log: Path, workers: int = 1, factory: bool = False, ready_path: str = "/healthz"
) -> Iterator[str]:
    """A server process for ``package`` (its output in ``log``); yields its base URL once ``ready_path`` answers 200.

    ``factory=True`` starts uvicorn on the app factory (no pre-check, as a process manager would),
    otherwise ``superkart serve``. Listening is not ready (maybe never): see :func:`wait_ready`.
    """
    from superkart_lib.course.serving import ServerProcess

    with ServerProcess(package, workers, STARTUP_TIMEOUT, log=log, factory=factory, ready_path=ready_path) as server:
        yield server.url


def wait_ready(url: str, timeout: float = STARTUP_TIMEOUT) -> httpx.Response:
    """The first ``/readyz`` answer that is final: ready, failed, or still loading at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{url}/readyz", timeout=5)
        if response.json()["status"] != "loading" or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


@pytest.fixture(scope="session")
def synthetic_frame():
    from superkart_lib.development.synthetic import generate

    return generate(rows=8763, seed=0)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`superkart train` on the default synthetic data, run once for the session."""
    out = tmp_path_factory.mktemp("train") / "model"
    result = run_cli("train", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.fixture(scope="module")
def package(trained) -> Path:
    """The session's trained package (a module that needs another one defines its own ``package``)."""
    return trained[0]


@pytest.fixture(scope="module")
def small_package(tmp_path_factory) -> Path:
    """A decision tree on 2,000 synthetic rows, written by write_package: a real package in seconds."""
    return make_package(tmp_path_factory.mktemp("small") / "model")
