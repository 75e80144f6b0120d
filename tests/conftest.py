"""Shared fixtures: synthetic data and one trained package reused across tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def synthetic_frame():
    from superkart_lib.synthetic import generate

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
